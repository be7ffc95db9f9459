#!/bin/sh
# TURN relaying benchmark: our relay against coturn on the same machine, in one run.
#
# Both servers listen on 127.0.0.1 only with the same shared secret (REST credentials, coturn's
# use-auth-secret) and allow loopback peers. bench/bin/turn_load allocates CLIENTS allocations on
# each, binds a channel to its own peer socket, and keeps WINDOW ChannelData messages of SIZE
# bytes in flight per client; the peer echoes, so each round trip is two relayed packets. For
# each payload size (120 bytes, and 1200 as a video-sized packet) each server's figure is its
# best round over the windows, and rounds alternate between the servers so background noise hits
# both. Reports relayed packets/s and server CPU per relayed packet (user + system time of every
# thread, from /proc), and the ratio of packets per CPU-second, whose goal is 1.5x coturn's.
#
# Environment: ROUNDS (2), SECONDS_PER_ROUND (3), CLIENTS (4), WINDOWS ("16 64"),
#              SIZES ("120 1200"), DIG_RELAY_BIN (./dig-relay), TURN_LOAD (bench/bin/turn_load),
#              STUN_LOAD (bench/bin/stun_load: free ports), BENCH_NICE (-15; 0 runs everything at
#              normal priority).
set -eu
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-3}
CLIENTS=${CLIENTS:-4}
WINDOWS=${WINDOWS:-16 64}
SIZES=${SIZES:-120 1200}
RELAY=${DIG_RELAY_BIN:-./dig-relay}
LOAD=${TURN_LOAD:-bench/bin/turn_load}
SECRET=bench-turn-secret
BENCH_NAME=turn
. bench/server-lib.sh
FREE_PORT=${STUN_LOAD:-bench/bin/stun_load}

for f in "$RELAY" "$LOAD" "$FREE_PORT"; do
    [ -x "$f" ] || { echo "bench-turn: $f not built (run: make bench-turn)"; exit 2; }
done
printf '%s\n' "$SECRET" >"$WORK/secret"
chmod 600 "$WORK/secret"

start_relay() {
    port=$("$FREE_PORT" --free-port udp)
    $PRIO "$RELAY" --stun-listen "127.0.0.1:$port" --turn --turn-public-ip 127.0.0.1 \
        --turn-secret-file "$WORK/secret" --turn-allow-loopback-peers \
        --turn-tcp-listen "127.0.0.1:$("$FREE_PORT" --free-port tcp)" \
        --listen "127.0.0.1:$("$FREE_PORT" --free-port tcp)" \
        --health-listen "127.0.0.1:$("$FREE_PORT" --free-port tcp)" \
        --dashboard-listen "127.0.0.1:$("$FREE_PORT" --free-port tcp)" \
        --log-level warn >"$WORK/relay.log" 2>&1 &
    SERVER_PID=$!
}

# coturn on loopback: TURN over UDP and TCP, no TLS, DTLS or CLI, no config file, its files in
# $WORK; its default worker threads (one per CPU).
start_coturn() {
    port=$("$FREE_PORT" --free-port udp)
    $PRIO turnserver -n --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$port" \
        --use-auth-secret --static-auth-secret "$SECRET" --realm dig.net --allow-loopback-peers \
        --no-tls --no-dtls --no-cli --userdb "$WORK/turndb" --no-stdout-log \
        --log-file "$WORK/coturn.log" --simple-log --pidfile "$WORK/coturn.pid" \
        >"$WORK/coturn.out" 2>&1 &
    SERVER_PID=$!
}

# One round against the server just started: prints its relayed packets/s and the server's CPU
# microseconds per relayed packet. The load tool retries its set-up until the server answers.
measure() {
    name=$1
    window=$2
    size=$3
    tries=0
    until "$LOAD" 127.0.0.1 "$port" "$SECRET" --clients 1 --window 1 --size 8 --seconds 0.1 \
            --warmup-ms 0 >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -ge 50 ]; then
            echo "bench-turn: $name did not relay on 127.0.0.1:$port" >&2
            tail -n 20 "$WORK"/*.log >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.1
    done
    t0=$(server_ticks)
    $PRIO "$LOAD" 127.0.0.1 "$port" "$SECRET" --clients "$CLIENTS" --window "$window" --size "$size" \
        --seconds "$SECONDS_PER_ROUND" >"$WORK/round.txt"
    t1=$(server_ticks)
    awk -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
        /^relayed_per_sec/ { rate = $2 }
        /^total_relayed/ { total = $2 }
        END { printf "%d %.2f\n", rate, (total > 0) ? ticks * 1e6 / hz / total : 0 }' "$WORK/round.txt"
}

have_coturn=1
command -v turnserver >/dev/null 2>&1 || have_coturn=0

echo "TURN benchmark: $CLIENTS allocations, windows $WINDOWS, ${SECONDS_PER_ROUND}s per round, $ROUNDS rounds"
echo "machine: $(nproc) CPU(s), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)"
for size in $SIZES; do
    best_relay=0
    best_coturn=0
    cpu_relay=""
    cpu_coturn=""
    i=1
    while [ "$i" -le "$ROUNDS" ]; do
        for window in $WINDOWS; do
            start_relay
            set -- $(measure dig-relay "$window" "$size")
            stop_server
            [ "$1" -gt "$best_relay" ] && best_relay=$1
            cpu_relay=$(lower "$cpu_relay" "$2")
            line="$size B, round $i, $CLIENTS x $window in flight: dig-relay $1/s ($2 us CPU/packet)"
            if [ "$have_coturn" = 1 ]; then
                start_coturn
                set -- $(measure coturn "$window" "$size")
                stop_server
                [ "$1" -gt "$best_coturn" ] && best_coturn=$1
                cpu_coturn=$(lower "$cpu_coturn" "$2")
                line="$line, coturn $1/s ($2 us)"
            fi
            echo "$line"
        done
        i=$((i + 1))
    done
    echo "$size B ChannelData, dig-relay: $best_relay relayed packets/s, $cpu_relay us of server CPU per packet"
    if [ "$have_coturn" = 1 ]; then
        echo "$size B ChannelData, coturn:    $best_coturn relayed packets/s, $cpu_coturn us of server CPU per packet"
        awk -v a="$best_relay" -v b="$best_coturn" -v ca="$cpu_relay" -v cb="$cpu_coturn" -v s="$size" 'BEGIN {
            e = (ca > 0) ? cb / ca : 0
            printf "%s B ChannelData: %.2fx coturn packets per CPU-second (goal >= 1.50x: %s), %.2fx its packets/s\n",
                s, e, (e >= 1.5) ? "met" : "NOT met", (b > 0) ? a / b : 0
        }'
    else
        echo "coturn: skipped: coturn not installed (apt-get install coturn)"
    fi
done
