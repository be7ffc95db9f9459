#!/bin/sh
# Runs the test binaries given as arguments and ends with the one summary line CI reads:
# "N passed, N failed, N skipped". Each binary prints "RESULT <passed> <failed> <skipped>" last;
# a binary that crashes, exits non-zero or prints no result line counts as a failure.
#
# Most tests spend their time waiting on the relay's timers, so they run TEST_JOBS at a time
# (default 4). The load-heavy ones (SERIAL) run afterwards, one at a time, so their latency
# bounds are not measured against each other's load; the long, idle ones (BACKGROUND: a PEX
# delta is due only after 60 s) start first and wait alongside everything else. Output is
# printed in argument order either way.
# Test programs are named by path (build/<cc>/tests/test_x); these lists by program name.
SERIAL="test_attack test_soak test_cluster_soak test_netfuzz test_bench_smoke"
BACKGROUND="test_pex_relay"
jobs=${TEST_JOBS:-4}
dir=$(mktemp -d "${TMPDIR:-/tmp}/dig-tests.XXXXXX")
trap 'rm -rf "$dir"' EXIT

run_one() {
    out="$dir/$(echo "$1" | tr '/' '_')"
    "./$1" >"$out.log" 2>&1
    echo $? >"$out.rc"
}

is_serial() {
    for s in $SERIAL; do [ "$s" = "${1##*/}" ] && return 0; done
    return 1
}

is_background() {
    for s in $BACKGROUND; do [ "$s" = "${1##*/}" ] && return 0; done
    return 1
}

for t in "$@"; do
    is_background "$t" && run_one "$t" &
done

# Waits for the light tests started since the last call, not for the background ones.
light=""
wait_light() {
    for pid in $light; do wait "$pid"; done
    light=""
}

running=0
for t in "$@"; do
    is_serial "$t" && continue
    is_background "$t" && continue
    run_one "$t" &
    light="$light $!"
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait_light
        running=0
    fi
done
wait_light
for t in "$@"; do
    is_serial "$t" && run_one "$t"
done
wait

passed=0 failed=0 skipped=0
for t in "$@"; do
    out="$dir/$(echo "$t" | tr '/' '_')"
    rc=$(cat "$out.rc")
    grep -v '^RESULT ' "$out.log"
    line=$(grep '^RESULT ' "$out.log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL $t: exited $rc without a result line"; failed=$((failed + 1)); continue
    fi
    p=$(echo "$line" | cut -d' ' -f2); f=$(echo "$line" | cut -d' ' -f3); s=$(echo "$line" | cut -d' ' -f4)
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $t: exited $rc"; failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
