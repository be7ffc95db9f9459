#!/usr/bin/env bash
# Cluster benchmark (bench/README.md, "Cluster"): one relay_message hop across two instances
# sharing a redis-server (--cluster-redis) against the same hop inside one instance, side by
# side in one run, with the same load tool (bench/bin/relay_load: senders on one instance, with
# --target-port their targets on the other).
#
#   a. CPU per delivered relay_message: PAIRS pairs, closed loop; for the cluster both relays
#      and Redis summed, for the local hop the one relay (a standalone relay, and the same hop
#      inside a clustered instance, which must cost what standalone does).
#   b. One-hop latency p50/p99 in open loop at RATE msg/s (10k), cluster against one instance.
#
# Rounds alternate between the setups so background load hits all of them; each figure is the
# median over ROUNDS. Every raw result line is kept in bench/bin/cluster-runs.txt.
# Environment: ROUNDS (3), SECS (5), PAIRS (8), WINDOW (16), SIZE (64), RATE (10000),
#              DIG_RELAY_BIN (./dig-relay), BENCH_NICE (-15; 0: no change).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
PAIRS=${PAIRS:-8}
WINDOW=${WINDOW:-16}
SIZE=${SIZE:-64}
RATE=${RATE:-10000}
RELAY=${DIG_RELAY_BIN:-./dig-relay}
LOAD=bench/bin/relay_load
RUNS=bench/bin/cluster-runs.txt
BENCH_NAME=cluster
. bench/server-lib.sh
. bench/multi-lib.sh

command -v redis-server >/dev/null ||
    { echo "bench-cluster: redis-server not installed (apt-get install -y redis-server)" >&2; exit 1; }
for f in "$RELAY" "$LOAD"; do
    [ -x "$f" ] || { echo "bench-cluster: $f is not built (run make bench-cluster)" >&2; exit 1; }
done
"$RELAY" --version | grep -q 'features:.* cluster' ||
    { echo "bench-cluster: $RELAY has no cluster support built in (install libhiredis-dev, rebuild)" >&2; exit 1; }
mkdir -p bench/bin
: >"$RUNS"

LIMITS_OFF=(--max-connections-per-ip 0 --registrations-per-ip-per-sec 0 --max-registrations-per-ip 0
    --messages-per-conn-per-sec 0 --bytes-per-conn-per-sec 0 --max-relayed-bytes-per-conn 0
    --ban-threshold 0 --log-level error)
# start_relay [flags...]: a relay on a free port; sets LAST_PORT and LAST_PID.
start_relay() {
    local port
    port=$(free_port)
    $PRIO "$RELAY" --listen 127.0.0.1:$port --health-listen 127.0.0.1:$(free_port) \
        --stun-listen 127.0.0.1:$(free_port) --dashboard-listen 127.0.0.1:$(free_port) \
        "${LIMITS_OFF[@]}" "$@" 2>>bench/bin/cluster-relay-stderr.txt &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_listening "$port"
    LAST_PORT=$port
}
REDIS_PORT=$(free_port)
$PRIO redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_listening "$REDIS_PORT"
start_relay; SOLO_PORT=$LAST_PORT; SOLO_PID=$LAST_PID
start_relay --cluster-redis redis://127.0.0.1:$REDIS_PORT --cluster-instance-id bench-a
A_PORT=$LAST_PORT; A_PID=$LAST_PID
start_relay --cluster-redis redis://127.0.0.1:$REDIS_PORT --cluster-instance-id bench-b
B_PORT=$LAST_PORT; B_PID=$LAST_PID

load() { $PRIO "$LOAD" --quiet --pairs "$PAIRS" --size "$SIZE" --duration "$SECS" --warmup 1 "$@"; }
# run <setup> <load args...>: one run, its raw line kept under the setup's name.
run() {
    local name=$1 line
    shift
    line=$(load "$@" || true)
    echo "$name $line" >>"$RUNS"
    echo "$line"
}
per_msg() { awk -v c="$(val "$1" server_cpu_s)" -v n="$(val "$1" delivered)" 'BEGIN { if (n > 0) printf "%.2f", c * 1e6 / n }'; }

declare -A CPU MPS P50 P99 LOST
for r in $(seq "$ROUNDS"); do
    echo "bench-cluster: round $r of $ROUNDS" >&2
    # a. CPU per message, closed loop
    l=$(run solo-cpu --port "$SOLO_PORT" --server-pid "$SOLO_PID" --window "$WINDOW")
    CPU[solo]+="$(per_msg "$l") "; MPS[solo]+="$(val "$l" msgs_per_s) "
    l=$(run local-cpu --port "$A_PORT" --server-pid "$A_PID" --window "$WINDOW")
    CPU[local]+="$(per_msg "$l") "; MPS[local]+="$(val "$l" msgs_per_s) "
    l=$(run cross-cpu --port "$A_PORT" --target-port "$B_PORT" --server-pid "$A_PID,$B_PID,$REDIS_PID" \
        --window "$WINDOW")
    CPU[cross]+="$(per_msg "$l") "; MPS[cross]+="$(val "$l" msgs_per_s) "
    # b. latency at RATE, open loop
    l=$(run solo-lat --port "$SOLO_PORT" --server-pid "$SOLO_PID" --rate "$RATE")
    P50[solo]+="$(val "$l" p50_us) "; P99[solo]+="$(val "$l" p99_us) "; LOST[solo]+="$(val "$l" lost) "
    l=$(run cross-lat --port "$A_PORT" --target-port "$B_PORT" --server-pid "$A_PID,$B_PID,$REDIS_PID" \
        --rate "$RATE")
    P50[cross]+="$(val "$l" p50_us) "; P99[cross]+="$(val "$l" p99_us) "; LOST[cross]+="$(val "$l" lost) "
done
med() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }

echo
echo "Cluster: $PAIRS pairs, ${SIZE}-byte payloads, median of $ROUNDS rounds of ${SECS} s"
printf "%-44s %14s %12s\n" "CPU per relay_message (closed loop)" "CPU us/msg" "msgs/s"
printf "%-44s %14s %12s\n" "one instance (standalone)" "$(med "${CPU[solo]}")" "$(med "${MPS[solo]}")"
printf "%-44s %14s %12s\n" "local hop in a clustered instance" "$(med "${CPU[local]}")" "$(med "${MPS[local]}")"
printf "%-44s %14s %12s\n" "cross-instance (2 relays + Redis summed)" "$(med "${CPU[cross]}")" "$(med "${MPS[cross]}")"
awk -v c="$(med "${CPU[cross]}")" -v s="$(med "${CPU[solo]}")" \
    'BEGIN { if (s > 0) printf "cross-instance / local hop: %.2fx (goal: at most 3x)\n", c / s }'
echo
printf "%-44s %10s %10s %8s\n" "one hop at $RATE msg/s (open loop)" "p50 us" "p99 us" "lost"
printf "%-44s %10s %10s %8s\n" "one instance" "$(med "${P50[solo]}")" "$(med "${P99[solo]}")" "$(med "${LOST[solo]}")"
printf "%-44s %10s %10s %8s\n" "cluster, across instances" "$(med "${P50[cross]}")" "$(med "${P99[cross]}")" "$(med "${LOST[cross]}")"
echo "(goal: p99 at most 1000 us on a quiet machine; raw lines in $RUNS)"
