#!/bin/sh
# STUN responder benchmark: our relay against coturn on the same machine, in one run.
#
# Both servers answer on 127.0.0.1 only; ours with its reflection limits disabled
# (--stun-per-ip-rps 0 --stun-global-rps 0), coturn as a plain STUN server
# (turnserver -n -S --no-tls --no-dtls --no-cli ...). bench/bin/stun_load drives each with the
# same closed loop at several depths (WINDOWS: requests outstanding per socket), because a shallow
# loop measures round-trip latency and only a deep one measures capacity. Each server's capacity
# is its best round over all depths; rounds alternate between the servers so background noise
# hits both. Prints every round, responses/s for both, and the ratio.
#
# Environment: ROUNDS (2), SECONDS_PER_ROUND (3), SOCKETS (8), WINDOWS ("32 64 128 256"),
#              DIG_RELAY_BIN (./dig-relay), STUN_LOAD (bench/bin/stun_load),
#              BENCH_NICE (-15; 0 runs everything at normal priority).
set -eu
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-3}
SOCKETS=${SOCKETS:-8}
WINDOWS=${WINDOWS:-32 64 128 256}
RELAY=${DIG_RELAY_BIN:-./dig-relay}
LOAD=${STUN_LOAD:-bench/bin/stun_load}
BENCH_NAME=stun
. bench/server-lib.sh

for f in "$RELAY" "$LOAD"; do
    [ -x "$f" ] || { echo "bench-stun: $f not built (run: make bench-stun)"; exit 2; }
done

start_relay() {
    port=$("$LOAD" --free-port udp)
    $PRIO "$RELAY" --stun-listen "127.0.0.1:$port" \
        --listen "127.0.0.1:$("$LOAD" --free-port tcp)" \
        --health-listen "127.0.0.1:$("$LOAD" --free-port tcp)" \
        --dashboard-listen "127.0.0.1:$("$LOAD" --free-port tcp)" \
        --stun-per-ip-rps 0 --stun-global-rps 0 --log-level warn >"$WORK/relay.log" 2>&1 &
    SERVER_PID=$!
}

# coturn confined to loopback: STUN over UDP only (no TCP, TLS, DTLS or CLI), no config file,
# its log, pid file and user database in $WORK.
start_coturn() {
    port=$("$LOAD" --free-port udp)
    $PRIO turnserver -n -S --no-tcp --no-tls --no-dtls --no-cli --listening-ip 127.0.0.1 \
        --relay-ip 127.0.0.1 --listening-port "$port" --userdb "$WORK/turndb" --no-stdout-log \
        --log-file "$WORK/coturn.log" --simple-log --pidfile "$WORK/coturn.pid" \
        >"$WORK/coturn.out" 2>&1 &
    SERVER_PID=$!
}

# Runs one round against the server just started, WINDOW deep; prints its responses/s and the
# server's CPU microseconds per response (a figure background load disturbs far less).
measure() {
    name=$1
    window=$2
    if ! "$LOAD" --probe 127.0.0.1 "$port"; then
        echo "bench-stun: $name did not answer on 127.0.0.1:$port" >&2
        tail -n 20 "$WORK"/*.log >&2 2>/dev/null || true
        exit 1
    fi
    t0=$(server_ticks)
    $PRIO "$LOAD" 127.0.0.1 "$port" --sockets "$SOCKETS" --window "$window" \
        --seconds "$SECONDS_PER_ROUND" >"$WORK/round.txt"
    t1=$(server_ticks)
    awk -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
        /^responses_per_sec/ { rate = $2 }
        /^total_responses/ { total = $2 }
        END { printf "%d %.2f\n", rate, (total > 0) ? ticks * 1e6 / hz / total : 0 }' "$WORK/round.txt"
}

best_relay=0
best_coturn=0
cpu_relay=""
cpu_coturn=""
have_coturn=1
command -v turnserver >/dev/null 2>&1 || have_coturn=0


echo "STUN benchmark: $SOCKETS sockets, windows $WINDOWS, ${SECONDS_PER_ROUND}s per round, $ROUNDS rounds"
echo "machine: $(nproc) CPU(s), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)"
i=1
while [ "$i" -le "$ROUNDS" ]; do
    for window in $WINDOWS; do
        start_relay
        set -- $(measure dig-relay "$window")
        stop_server
        [ "$1" -gt "$best_relay" ] && best_relay=$1
        cpu_relay=$(lower "$cpu_relay" "$2")
        line="round $i, $SOCKETS x $window outstanding: dig-relay $1/s ($2 us CPU/response)"
        if [ "$have_coturn" = 1 ]; then
            start_coturn
            set -- $(measure coturn "$window")
            stop_server
            [ "$1" -gt "$best_coturn" ] && best_coturn=$1
            cpu_coturn=$(lower "$cpu_coturn" "$2")
            line="$line, coturn $1/s ($2 us)"
        fi
        echo "$line"
    done
    i=$((i + 1))
done

echo "dig-relay: $best_relay responses/s, $cpu_relay us of server CPU per response"
if [ "$have_coturn" = 1 ]; then
    echo "coturn:    $best_coturn responses/s, $cpu_coturn us of server CPU per response"
    awk -v a="$best_relay" -v b="$best_coturn" -v ca="$cpu_relay" -v cb="$cpu_coturn" 'BEGIN {
        r = (b > 0) ? a / b : 0
        printf "ratio:     %.2fx coturn (goal >= 1.50x: %s); CPU per response %.2fx lower\n",
            r, (r >= 1.5) ? "met" : "NOT met", (ca > 0) ? cb / ca : 0
    }'
else
    echo "coturn:    skipped: coturn not installed (apt-get install coturn)"
fi
