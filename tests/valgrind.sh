#!/bin/sh
# Runs the integration suite with every relay it starts under valgrind's memcheck:
#   tests/valgrind.sh [tests/test_x ...]
# Without arguments it runs every test whose source starts the relay, except the load tests
# listed in SKIP below. It builds ./dig-relay and those tests with make first (a plain build).
#
# The harness runs $DIG_RELAY_BIN instead of ./dig-relay, so this points it at a small wrapper
# that execs the real binary under valgrind with --error-exitcode=1: an invalid read or write,
# a use of uninitialised memory, or a definite or indirect leak at exit makes the relay exit 1,
# which the tests see (they expect exit 0 after SIGTERM). Each relay's valgrind report goes to
# its own log file, and the script also fails if any of them counts an error, so nothing is
# missed when a test does not look at the exit status. The relay ($DIG_RELAY_BIN when set, else
# ./dig-relay) must be a plain build: valgrind cannot run an AddressSanitizer binary.
set -u
cd "$(dirname "$0")/.." || exit 2
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 2; }

# Load and timing-bound tests: valgrind slows the relay 20-50 times, which they are not for.
SKIP="test_soak test_netfuzz test_attack test_bench_smoke"
B=$(make -s builddir)
if [ "$#" -eq 0 ]; then
    for src in $(grep -lE 'relay_start|h_start' tests/test_*.c); do
        name=$(basename "$src" .c)
        case " $SKIP " in *" $name "*) continue ;; esac
        set -- "$@" "$B/tests/$name"
    done
fi
make -s -j2 test-bins || exit 2
relay=${DIG_RELAY_BIN:-$(pwd)/$B/dig-relay}
[ -x "$relay" ] || { echo "valgrind.sh: $relay is missing" >&2; exit 2; }
if ASAN_OPTIONS=help=1 "$relay" --version 2>&1 | grep -q AddressSanitizer; then
    echo "valgrind.sh: $relay is an ASan build; point DIG_RELAY_BIN at a plain one" >&2
    exit 2
fi
for t in "$@"; do
    [ -x "$t" ] || { echo "valgrind.sh: $t is not built" >&2; exit 2; }
done

work=$(mktemp -d /tmp/dig-valgrind.XXXXXX)
cat >"$work/relay" <<EOF
#!/bin/sh
exec valgrind --quiet --error-exitcode=1 --leak-check=full \\
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \\
    --log-file=$work/vg.%p.log "$relay" "\$@"
EOF
chmod +x "$work/relay"

# The few bounds a test puts on the relay's answers scale with this (tests/harness.h).
export DIG_TEST_SLOWDOWN="${DIG_TEST_SLOWDOWN:-20}"
started=$(date +%s)
DIG_RELAY_BIN=$work/relay sh tests/run.sh "$@"
status=$?

runs=0 bad=0
for log in "$work"/vg.*.log; do
    [ -e "$log" ] || continue
    runs=$((runs + 1))
    # --quiet leaves a log empty unless valgrind found something to say.
    if [ -s "$log" ]; then
        bad=$((bad + 1))
        if [ "$bad" -le 3 ]; then
            echo "---- valgrind report $log"
            head -n 60 "$log"
        fi
    fi
done
echo "valgrind: $runs relay runs, $bad with a report, $(( $(date +%s) - started ))s"
if [ "$runs" -eq 0 ]; then
    echo "valgrind: no relay ran under valgrind"
    status=1
fi
[ "$bad" -eq 0 ] || status=1
if [ "$status" -eq 0 ]; then
    rm -rf "$work"
else
    echo "valgrind: logs kept in $work"
fi
exit "$status"
