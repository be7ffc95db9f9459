#!/bin/sh
# The relay on a 32-bit big-endian CPU, the word size and byte order of many home routers:
# cross-builds the relay and the unit tests of its pure parts for MIPS with the project's
# warnings as errors, runs those tests under qemu-user, then runs the integration suite
# (tests/test_relay, built natively) against the MIPS relay under qemu. Needs Debian's
# gcc-mips-linux-gnu, libc6-dev-mips-cross and qemu-user; says "skipped:" when one is missing.
# Ends with "N passed, N failed" and exits non-zero on any failure (make test-mips).
set -u
cd "$(dirname "$0")/.."

CC=${MIPS_CC:-mips-linux-gnu-gcc}
QEMU=${MIPS_QEMU:-qemu-mips}
VERSION=${VERSION:-0.1.0}
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "skipped: gcc-mips-linux-gnu not installed"; exit 0
fi
if ! command -v "$QEMU" >/dev/null 2>&1; then
    echo "skipped: qemu-user not installed"; exit 0
fi

out=$(mktemp -d /tmp/dig-mips.XXXXXX)
trap 'rm -rf "$out"' EXIT
# 64-bit file offsets: a 32-bit readdir under qemu on a 64-bit host otherwise fails with
# EOVERFLOW on ext4's hashed directory offsets (the fuzz-corpus replay reads directories).
# The version string goes through a header: quotes do not survive the word splitting below.
printf '#define DIG_RELAY_VERSION "%s"\n' "$VERSION" >"$out/version.h"
CFLAGS="-O2 -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -include $out/version.h \
-Wall -Wextra -Wshadow -Wconversion -Werror -I."

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

# Every library source once, two at a time; a warning on 32-bit is a failure like any other.
# The embedded pages are written by a tool that runs here, on the build machine.
make -s build/web/assets.c || { fail "build/web/assets.c is generated"; echo "$passed passed, $failed failed"; exit 1; }
lib_srcs=$(ls *.c compat/*.c build/web/assets.c | grep -v '^dig-relay.c$')
if printf '%s\n' $lib_srcs | xargs -P 2 -I{} sh -c \
    'o="$1/$(echo "$2" | tr / _).o"; '"$CC $CFLAGS"' -c "$2" -o "$o"' _ "$out" {}; then
    pass "library builds for 32-bit big-endian MIPS"
else
    fail "library builds for 32-bit big-endian MIPS"
    echo "$passed passed, $failed failed"
    exit 1
fi
objs=$(ls "$out"/*.o)

# shellcheck disable=SC2086
if $CC $CFLAGS -static -o "$out/dig-relay" dig-relay.c $objs; then
    pass "dig-relay links"
else
    fail "dig-relay links"
fi

# The unit tests of the codecs, tables and limits: pure code, no relay process. They link the
# test support files as every test program does (the harness, the .mmdb writer...).
support=$(ls tests/*.c | grep -v '^tests/test_')
for t in abuse addr bodycache buf config dht fuzz_regress hash http json loop map pex ratelimit stats stun topk turn webassets wire ws; do
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS -static -o "$out/test_$t" "tests/test_$t.c" $support $objs; then
        fail "tests/test_$t builds"
        continue
    fi
    if "$QEMU" "$out/test_$t" >"$out/test_$t.log" 2>&1 && grep -q '^RESULT [0-9]* 0 ' "$out/test_$t.log"; then
        pass "tests/test_$t under $QEMU ($(sed -n 's/^RESULT \([0-9]*\) .*/\1/p' "$out/test_$t.log") tests)"
    else
        fail "tests/test_$t under $QEMU"
        tail -n 30 "$out/test_$t.log"
    fi
done

# The integration suite against the MIPS relay: wire bytes, limits and shutdown on big-endian.
if [ -x "$out/dig-relay" ]; then
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$QEMU" "$out/dig-relay" >"$out/relay.sh"
    chmod +x "$out/relay.sh"
    if make -s tests/test_relay >/dev/null &&
        DIG_RELAY_BIN="$out/relay.sh" "$(make -s builddir)/tests/test_relay" >"$out/test_relay.log" 2>&1 &&
        grep -q '^RESULT [0-9]* 0 ' "$out/test_relay.log"; then
        pass "tests/test_relay against the MIPS relay under $QEMU"
    else
        fail "tests/test_relay against the MIPS relay under $QEMU"
        grep -B 12 '^FAIL' "$out/test_relay.log" | tail -n 60
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
