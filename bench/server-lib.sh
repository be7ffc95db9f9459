# Sourced by bench/bench-stun.sh and bench/bench-turn.sh after they set BENCH_NAME: a scratch
# directory ($WORK, removed on exit), one server process at a time ($SERVER_PID, stop_server),
# the server's CPU time (server_ticks, every thread, from /proc), the lower of two figures
# (lower), and the raised priority ($PRIO) servers and load tool run at when allowed, like
# bench/bench.sh, so background jobs on a shared machine disturb the figures less; both servers
# get the same treatment. BENCH_NICE (-15; 0 runs everything at normal priority).
WORK=$(mktemp -d "/tmp/bench-$BENCH_NAME.XXXXXX")
SERVER_PID=""

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

NICE=${BENCH_NICE:--15}
PRIO=""
if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null; then PRIO="nice -n $NICE"; fi

server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }

# Keeps the lower of two figures (the least disturbed CPU cost); an empty first one loses.
lower() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }
