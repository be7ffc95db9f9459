#!/usr/bin/env bash
# make test-release: every release artifact tested where it runs. For each Linux artifact in
# dist/ (make release), the unit tests built with it (build/release/<target>/tests/, same
# compiler, flags and libc) run under qemu-user (x64 natively), then the integration suite
# (tests/test_relay, built natively) runs against the artifact itself. For the Windows artifact
# the integration suite runs against dig-relay.exe under wine: the tests stay on Linux and talk
# to it over loopback. Unit tests run two targets at a time, integration suites one at a time;
# each target prints its own lines and times, and the last line is "N passed, N failed".
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
suite=$(make -s builddir)/tests/test_relay

if [[ " $targets " == *" windows-x64 "* ]]; then
    if command -v wine >/dev/null 2>&1; then
        export WINEPREFIX="$out/wine" WINEDEBUG=-all
        wineboot -i >/dev/null 2>&1
        wineserver -p   # one wineserver for the whole suite, not one per relay started
    fi
fi

# Each phase appends its lines to $out/<target>.log and adds to $out/<target>.count.
count() {
    local p=0 f=0
    [ -f "$out/$1.count" ] && read -r p f <"$out/$1.count"
    echo "$((p + $2)) $((f + $3))" >"$out/$1.count"
}

# Phase 1, two targets at a time: the unit tests built with the target's toolchain.
unit_phase() {
    local t=$1 passed=0 failed=0 log=$out/$1.log
    pass() { passed=$((passed + 1)); echo "ok   $t: $1" >>"$log"; }
    fail() { failed=$((failed + 1)); echo "FAIL $t: $1" >>"$log"; }
    : >"$log"
    if ! target_env "$t" 2>>"$log"; then
        fail "toolchain"
    elif [ ! -x "$PWD/dist/dig-relay-$version-$t$T_EXT" ]; then
        fail "dist/dig-relay-$version-$t$T_EXT missing (make release first)"
    elif [ "$T_RUN" != wine ]; then
        local dir=build/release/$t u
        local bins=$(cd "$dir" && CC=$T_CC make -s TLS=1 GEOIP=0 BEARSSL_CFLAGS="-isystem $DIG_BUILD_CACHE/bearssl-$t/include" BEARSSL_LIBS="-L$DIG_BUILD_CACHE/bearssl-$t/lib -lbearssl" builddir 2>/dev/null)/tests
        for u in "$dir/$bins"/test_*; do
            [ -x "$u" ] || continue
            if (cd "$dir" && $T_RUN "$bins/${u##*/}") >"$out/$t.${u##*/}.log" 2>&1 &&
                grep -q '^RESULT [0-9]* 0 ' "$out/$t.${u##*/}.log"; then
                pass "${u##*/} ($(sed -n 's/^RESULT \([0-9]*\) .*/\1/p' "$out/$t.${u##*/}.log") tests)"
            else
                fail "${u##*/}"
                tail -n 30 "$out/$t.${u##*/}.log" >>"$log"
            fi
        done
    fi
    count "$t" "$passed" "$failed"
}

# Phase 2, one target at a time: the integration suite holds latency bounds that two emulated
# relays side by side on two cores would measure against each other.
integration_phase() {
    local t=$1 passed=0 failed=0 start=$SECONDS log=$out/$1.log
    pass() { passed=$((passed + 1)); echo "ok   $t: $1" >>"$log"; }
    fail() { failed=$((failed + 1)); echo "FAIL $t: $1" >>"$log"; }
    target_env "$t" 2>/dev/null || return
    local art=$PWD/dist/dig-relay-$version-$t$T_EXT wrap=$out/$t.relay
    [ -x "$art" ] || return
    if [ "$T_RUN" = wine ]; then
        if ! command -v wine >/dev/null 2>&1; then
            echo "skipped: wine not installed" >>"$log"
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
        printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$T_RUN" "$art" >"$wrap"
    fi
    chmod +x "$wrap"
    # An emulated relay is several times slower than a native one: latency bounds scale.
    local slowdown=1
    [ -n "$T_RUN" ] && slowdown=4
    if DIG_RELAY_BIN=$wrap DIG_TEST_SLOWDOWN=$slowdown "$suite" >"$out/$t.relay.log" 2>&1 &&
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
    echo "   ($t integration: $((SECONDS - start)) s)" >>"$log"
    count "$t" "$passed" "$failed"
}

phase_start=$SECONDS
running=()
for t in $targets; do
    unit_phase "$t" &
    running+=($!)
    if [ ${#running[@]} -ge 2 ]; then
        wait -n
        running=($(jobs -rp))
    fi
done
wait
echo "   (unit tests of every target: $((SECONDS - phase_start)) s)"
for t in $targets; do
    integration_phase "$t"
done

passed=0 failed=0
for t in $targets; do
    cat "$out/$t.log"
    read -r p f <"$out/$t.count"
    passed=$((passed + p)) failed=$((failed + f))
done
[ -n "${WINEPREFIX:-}" ] && wineserver -k 2>/dev/null
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
