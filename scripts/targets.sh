# Release targets: sourced by scripts/release.sh and tests/cross.sh. `target_env NAME` sets, for
# one artifact name (linux-x64, linux-arm64, linux-armhf, linux-mips, linux-mipsel,
# windows-x64):
#   T_CC      the C compiler: musl (static, no glibc floor) for Linux, mingw-w64 for Windows
#   T_STRIP, T_AR  its strip and ar
#   T_RUN     what runs its binaries here: "" (natively), qemu-<arch>, or wine
#   T_EXT     ".exe" or ""
#   T_LDFLAGS static linking and section garbage collection
# Debian bookworm ships musl for x64 (musl-tools) and, as multiarch musl-dev:<arch>, for arm64,
# armhf and mipsel with cross wrappers (aarch64-linux-musl-gcc, ...). It has no big-endian mips
# port any more, so linux-mips builds musl from Debian's musl source package at build time
# (`apt-get source musl`, deb-src enabled), once, into $DIG_BUILD_CACHE.
# Fails with a message naming the missing Debian package.

DIG_TARGETS="linux-x64 linux-arm64 linux-armhf linux-mips linux-mipsel windows-x64"
# Built toolchain parts (musl for mips, BearSSL per target) are kept between runs here.
: "${DIG_BUILD_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/dig-relay}"

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "$2: $1 not found (apt-get install $3)" >&2; return 1; }
}

# musl for big-endian MIPS, from Debian's source package, cross-compiled with gcc-mips-linux-gnu.
# The gcc wrapper is asked for by name: musl's configure only picks it by itself when the cross
# compiler has glibc's headers (libc6-dev-mips-cross, which a --no-install-recommends install
# leaves out).
musl_mips() {
    local prefix="$DIG_BUILD_CACHE/musl-mips"
    if [ -x "$prefix/bin/musl-gcc" ]; then
        echo "$prefix/bin/musl-gcc"; return 0
    fi
    need mips-linux-gnu-gcc linux-mips gcc-mips-linux-gnu || return 1
    need dpkg-source linux-mips dpkg-dev || return 1
    local src="$DIG_BUILD_CACHE/src-musl"
    rm -rf "$src" && mkdir -p "$src"
    (cd "$src" && apt-get -o Acquire::Retries=5 source -qq musl >/dev/null 2>&1) ||
        { echo "linux-mips: apt-get source musl failed (deb-src lines needed)" >&2; return 1; }
    (cd "$src"/musl-*/ &&
        ./configure --target=mips-linux-gnu CC=mips-linux-gnu-gcc --prefix="$prefix" \
            --disable-shared --enable-wrapper=gcc >/dev/null &&
        make -j2 >/dev/null 2>&1 && make install >/dev/null 2>&1) ||
        { echo "linux-mips: building musl failed" >&2; return 1; }
    rm -rf "$src"
    echo "$prefix/bin/musl-gcc"
}

target_env() {
    T_EXT="" T_RUN="" T_LDFLAGS="-static -Wl,--gc-sections"
    case "$1" in
    linux-x64)
        T_CC=x86_64-linux-musl-gcc T_STRIP=strip
        need "$T_CC" "$1" musl-tools || return 1 ;;
    linux-arm64)
        T_CC=aarch64-linux-musl-gcc T_STRIP=aarch64-linux-gnu-strip T_RUN=qemu-aarch64
        need aarch64-linux-gnu-gcc "$1" gcc-aarch64-linux-gnu || return 1
        need "$T_CC" "$1" musl-dev:arm64 || return 1 ;;
    linux-armhf)
        T_CC=arm-linux-musleabihf-gcc T_STRIP=arm-linux-gnueabihf-strip T_RUN=qemu-arm
        need arm-linux-gnueabihf-gcc "$1" gcc-arm-linux-gnueabihf || return 1
        need "$T_CC" "$1" musl-dev:armhf || return 1 ;;
    linux-mipsel)
        T_CC=mipsel-linux-musl-gcc T_STRIP=mipsel-linux-gnu-strip T_RUN=qemu-mipsel
        need mipsel-linux-gnu-gcc "$1" gcc-mipsel-linux-gnu || return 1
        need "$T_CC" "$1" musl-dev:mipsel || return 1 ;;
    linux-mips)
        T_CC=$(musl_mips) || return 1
        T_STRIP=mips-linux-gnu-strip T_RUN=qemu-mips ;;
    windows-x64)
        T_CC=x86_64-w64-mingw32-gcc T_STRIP=x86_64-w64-mingw32-strip T_RUN=wine T_EXT=.exe
        T_LDFLAGS="-static -Wl,--gc-sections"
        need "$T_CC" "$1" mingw-w64 || return 1 ;;
    *)
        echo "unknown target $1 (one of: $DIG_TARGETS)" >&2; return 1 ;;
    esac
    T_AR=${T_STRIP%strip}ar
    if [ -n "$T_RUN" ] && [ "$T_RUN" != wine ]; then
        need "$T_RUN" "$1" qemu-user || return 1
    fi
    return 0
}
