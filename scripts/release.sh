#!/bin/sh
# make release: builds every release artifact into dist/ and writes dist/SHA256SUMS.
#   dist/dig-relay-<version>-linux-x64, -linux-arm64, -linux-armhf, -linux-mips, -linux-mipsel
#   (fully static with musl: no libc needed on the host) and -windows-x64.exe (mingw-w64,
#   static). Each is stripped and must stay under 1 MiB.
# Each target builds in build/release/<target>/, a copy of the source tree, through the
# project's own Makefile (CC and flags from the environment), together with the unit tests
# tests/cross.sh then runs under qemu-user (they land in that copy's `make builddir`). When the Makefile builds TLS (BearSSL),
# BearSSL is built for the target first (scripts/bearssl.sh) and the artifact must say "tls" in
# its --version line.
# Usage: scripts/release.sh [TARGET...]   (default: all; scripts/targets.sh lists them)
set -eu
cd "$(dirname "$0")/.."
. scripts/targets.sh

version=$(make -s version)
targets=${*:-$DIG_TARGETS}
mkdir -p dist build/release
# The unit tests tests/cross.sh runs on each target: pure code, no relay process.
UNIT_TESTS="abuse addr buf config fuzz_regress hash http json loop pex proxy ratelimit stun turn wire ws"
wants_tls=false
grep -q '^BEARSSL_LIBS' Makefile && wants_tls=true

for t in $targets; do
    start=$(date +%s)
    target_env "$t"
    dir=build/release/$t
    rm -rf "$dir" && mkdir -p "$dir"
    tar cf - --exclude=./build --exclude=./dist --exclude=./.git --exclude='*.o' \
        --exclude='*.d' --exclude=./dig-relay --exclude=./dig-relay.exe --exclude=./fuzz/bin \
        --exclude=./bench/bin . | tar xf - -C "$dir"
    cflags="-Os -g -ffunction-sections -fdata-sections"
    ldflags=$T_LDFLAGS
    # The Makefile's TLS knobs: BearSSL built for this target, and the build fails without it.
    tls="TLS=0"
    if $wants_tls; then
        bssl=$DIG_BUILD_CACHE/bearssl-$t
        sh scripts/bearssl.sh "$T_CC" "$T_AR" "$bssl"
        tls="TLS=1"
    fi
    out=dist/dig-relay-$version-$t$T_EXT
    if [ "$t" = windows-x64 ]; then
        wtls=""
        $wants_tls && wtls="-DDIG_HAVE_TLS=1 -isystem $bssl/include -L$bssl/lib -lbearssl"
        make -s -C "$dir" windows MINGW="$T_CC $ldflags" WINDOWS_TLS="$wtls" >/dev/null
        cp "$dir/dig-relay.exe" "$out"
    else
        tests=""
        for u in $UNIT_TESTS; do tests="$tests tests/test_$u"; done
        # GEOIP=0: no libmaxminddb for the static targets (the peer map shows no places); CLUSTER=0:
        # no hiredis for them either (a cluster runs the Debian build).
        # shellcheck disable=SC2086
        CC=$T_CC CFLAGS="$cflags" LDFLAGS="$ldflags" \
            make -s -j2 -C "$dir" $tls GEOIP=0 CLUSTER=0 BEARSSL_CFLAGS="-isystem ${bssl:-/nonexistent}/include" \
            BEARSSL_LIBS="-L${bssl:-/nonexistent}/lib -lbearssl" dig-relay $tests >/dev/null
        cp "$dir/dig-relay" "$out"
        if readelf -lW "$out" | grep -q INTERP || readelf -dW "$out" | grep -q NEEDED; then
            echo "$out is not fully static" >&2; exit 1
        fi
    fi
    $T_STRIP "$out"
    size=$(wc -c <"$out")
    if [ "$size" -ge 1048576 ]; then
        echo "$out is $size bytes, over the 1 MiB budget" >&2; exit 1
    fi
    if $wants_tls; then
        # shellcheck disable=SC2086
        $T_RUN "$out" --version 2>/dev/null | grep -qw tls ||
            { echo "$out was built without TLS" >&2; exit 1; }
    fi
    echo "$out: $size bytes ($(( $(date +%s) - start )) s)"
done
(cd dist && sha256sum dig-relay-"$version"-* >SHA256SUMS)
echo "dist/SHA256SUMS"
