#!/bin/sh
# Builds BearSSL for one release target from Debian's bearssl source package (`apt-get source
# bearssl`; deb-src must be enabled), for targets Debian has no libbearssl-dev for: the static
# musl Linux targets and Windows. Usage: scripts/bearssl.sh CC AR DEST
# Leaves DEST/include (BearSSL's headers) and DEST/lib/libbearssl.a; does nothing when they are
# already there. No BearSSL source is kept in this repository.
set -eu
cc=$1 ar=$2 dest=$3
[ -f "$dest/lib/libbearssl.a" ] && exit 0
work=$(mktemp -d "${TMPDIR:-/tmp}/bearssl.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get -o Acquire::Retries=5 source -qq bearssl >/dev/null 2>&1) || {
    echo "bearssl: apt-get source bearssl failed (enable deb-src and install dpkg-dev)" >&2
    exit 1
}
src=$(echo "$work"/bearssl-*/)
mkdir -p "$work/obj" "$dest/lib" "$dest/include"
# Every source file once, two at a time, sized for small binaries; the linker keeps only what
# the relay calls.
find "$src/src" -name '*.c' | xargs -P 2 -I{} sh -c \
    'o="$1/obj/$(echo "$2" | tr / _).o"; $3 -Os -ffunction-sections -fdata-sections \
     -I"$4/src" -I"$4/inc" -c "$2" -o "$o"' _ "$work" {} "$cc" "$src"
$ar rcs "$dest/lib/libbearssl.a" "$work"/obj/*.o
cp "$src"/inc/*.h "$dest/include/"
