#!/usr/bin/env bash
# make test-release: every release artifact tested where it runs. For each Linux artifact in
# dist/ (make release), the unit tests built with it (build/release/<target>/tests/, same
# compiler, flags and libc) run under qemu-user (x64 natively), then the integration suite
# (tests/test_relay, built natively) runs against the artifact itself. For the Windows artifact
# the integration suite runs against dig-relay.exe under wine: the tests stay on Linux and talk
# to it over loopback. Two targets run at a time; each prints its own lines and time, and the
# last line is "N passed, N failed".
#
# Under wine, SIGTERM ends the process at once (wine maps it to no Windows event), while SIGINT
# reaches the program as Ctrl-C, the Windows console's stop request, which takes the relay's
# clean shutdown path; the wrapper turns the harness's SIGTERM into SIGINT so the suite checks
# the same clean shutdown on Windows as everywhere else. Then tests/wine_service.sh runs the
# relay as a Windows service under wine's service control manager.
# Usage: tests/cross.sh [TARGET...]   (default: every target in scripts/targets.sh)
set -u
cd "$(dirname "$0")/.."
. scripts/targets.sh

version=$(make -s version)
targets=${*:-$DIG_TARGETS}
out=$(mktemp -d "${TMPDIR:-/tmp}/dig-cross.XXXXXX")
trap 'rm -rf "$out"' EXIT
make -s tests/test_relay >/dev/null || { echo "FAIL: tests/test_relay does not build"; exit 1; }

if [[ " $targets " == *" windows-x64 "* ]]; then
    if command -v wine >/dev/null 2>&1; then
        export WINEPREFIX="$out/wine" WINEDEBUG=-all
        wineboot -i >/dev/null 2>&1
        wineserver -p   # one wineserver for the whole suite, not one per relay started
    fi
fi

# Runs one target's tests, writing "passed failed" to $out/<target>.count.
test_target() {
    local t=$1 passed=0 failed=0 start=$SECONDS log=$out/$1.log
    pass() { passed=$((passed + 1)); echo "ok   $t: $1" >>"$log"; }
    fail() { failed=$((failed + 1)); echo "FAIL $t: $1" >>"$log"; }
    : >"$log"
    if ! target_env "$t" 2>>"$log"; then
        fail "toolchain"
        echo "$passed $failed" >"$out/$t.count"
        return
    fi
    local art=$PWD/dist/dig-relay-$version-$t$T_EXT wrap=$out/$t.relay
    if [ ! -x "$art" ]; then
        fail "$art missing (make release first)"
        echo "$passed $failed" >"$out/$t.count"
        return
    fi
    if [ "$T_RUN" = wine ]; then
        if ! command -v wine >/dev/null 2>&1; then
            echo "skipped: wine not installed" >>"$log"
            echo "0 0" >"$out/$t.count"
            return
        fi
        cat >"$wrap" <<EOF
#!/bin/sh
wine "$art" "\$@" &
pid=\$!
trap 'kill -INT \$pid 2>/dev/null' TERM INT
while :; do wait \$pid; rc=\$?; kill -0 \$pid 2>/dev/null || break; done
exit \$rc
EOF
    else
        local dir=build/release/$t u
        for u in "$dir"/tests/test_*; do
            [ -x "$u" ] || continue
            if (cd "$dir" && $T_RUN "./tests/${u##*/}") >"$out/$t.${u##*/}.log" 2>&1 &&
                grep -q '^RESULT [0-9]* 0 ' "$out/$t.${u##*/}.log"; then
                pass "${u##*/} ($(sed -n 's/^RESULT \([0-9]*\) .*/\1/p' "$out/$t.${u##*/}.log") tests)"
            else
                fail "${u##*/}"
                tail -n 30 "$out/$t.${u##*/}.log" >>"$log"
            fi
        done
        printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$T_RUN" "$art" >"$wrap"
    fi
    chmod +x "$wrap"
    if DIG_RELAY_BIN=$wrap ./tests/test_relay >"$out/$t.relay.log" 2>&1 &&
        grep -q '^RESULT [0-9]* 0 ' "$out/$t.relay.log"; then
        pass "integration suite against ${art##*/} ($(sed -n 's/^RESULT \([0-9]*\) .*/\1/p' "$out/$t.relay.log") tests)"
    else
        fail "integration suite against ${art##*/}"
        grep -B 12 '^FAIL' "$out/$t.relay.log" | tail -n 80 >>"$log"
    fi
    if [ "$T_RUN" = wine ]; then
        # The service itself under wine's SCM: install, start, /health, stop, auto-start, uninstall.
        sh tests/wine_service.sh "$art" $((20000 + RANDOM % 9000)) >"$out/$t.svc.log" 2>&1
        local line
        while read -r line; do
            case $line in ok*) pass "${line#ok   }" ;; FAIL*) fail "${line#FAIL }" ;; esac
        done <"$out/$t.svc.log"
    fi
    echo "   ($t: $((SECONDS - start)) s)" >>"$log"
    echo "$passed $failed" >"$out/$t.count"
}

running=()
for t in $targets; do
    test_target "$t" &
    running+=($!)
    if [ ${#running[@]} -ge 2 ]; then
        wait -n
        running=($(jobs -rp))
    fi
done
wait

passed=0 failed=0
for t in $targets; do
    cat "$out/$t.log"
    read -r p f <"$out/$t.count"
    passed=$((passed + p)) failed=$((failed + f))
done
[ -n "${WINEPREFIX:-}" ] && wineserver -k 2>/dev/null
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
