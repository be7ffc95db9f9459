#!/usr/bin/env bash
# The relay half of `make bench`: drives ./dig-relay and redis-server with bench/bin/relay_load
# through the same pairs, windows and payloads, runs reconnect storms of 5k-20k reservations on
# one network (each beside its floor, bench/tcp_floor.c: the same bytes written by a program that
# does nothing else), holds 10k and 50k idle reservations, and prints one table with the goals from
# bench/README.md next to each measured figure.
#
# Every run gets a fresh server on free loopback ports, with the relay's per-IP abuse limits off.
# The latency and idle runs are repeated on the poll() build (dig-relay-poll) when it is built, to
# show what the epoll backend buys at 10k-50k connections.
# Knobs (environment): BENCH_SECS (measured seconds per run, 5), BENCH_PAIRS (8), BENCH_WINDOW
# (32), BENCH_IDLE_SECS (60: two keepalive rounds), BENCH_IDLE_CONNS ("10000 50000"),
# BENCH_STORM_CONNS ("5000 10000 20000"), BENCH_NICE (-15; 0 = no priority change), BENCH_QUICK=1
# (a short pass with small counts, to check the setup). The raw key=value line of every run is
# kept in bench/bin/relay-runs.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

RELAY=${DIG_RELAY_BIN:-./dig-relay}
RELAY_POLL=${DIG_RELAY_POLL_BIN:-./dig-relay-poll}   # the portable poll() backend, for before/after
LOAD=bench/bin/relay_load
FLOOR=bench/bin/tcp_floor
SECS=${BENCH_SECS:-5}
WARMUP=${BENCH_WARMUP:-1}
PAIRS=${BENCH_PAIRS:-8}
WINDOW=${BENCH_WINDOW:-32}
IDLE_SECS=${BENCH_IDLE_SECS:-60}
IDLE_CONNS=${BENCH_IDLE_CONNS:-"10000 50000"}
LAT_CONNS=10000 LAT_PAIRS=100 LAT_RATE=10000 LAT_SIZE=1024
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    SECS=2 IDLE_SECS=5 IDLE_CONNS=${BENCH_IDLE_CONNS:-"1000 2000"} LAT_CONNS=1000 LAT_RATE=2000
fi

missing=
for pair in redis-server:redis-server; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "bench: missing Debian package(s):$missing  (apt-get install -y$missing)" >&2
    exit 1
fi
for f in "$RELAY" "$LOAD" "$FLOOR"; do
    [ -x "$f" ] || { echo "bench: $f is not built (run make bench)" >&2; exit 1; }
done

# Servers and tool run at a raised priority when allowed, so background jobs on a shared machine
# disturb the figures less (BENCH_NICE=0 turns it off); both servers get the same treatment.
PRIO=()
NICE=${BENCH_NICE:--15}
if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null; then PRIO=(nice -n "$NICE"); fi

# Idle reservations need a descriptor each in the relay and in the load tool.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_MAX=$(ulimit -n)

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p bench/bin
RUNS=bench/bin/relay-runs.txt
: >"$RUNS"
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; SERVER_PID=; }
VETH_NS=
veth_teardown() { for ns in $VETH_NS; do ip netns del "$ns" 2>/dev/null || true; done; VETH_NS=; }
trap 'cleanup; veth_teardown' EXIT INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Four consecutive free ports; prints the first.
free_ports() {
    local p
    for _ in $(seq 50); do
        p=$((10000 + RANDOM % 22000))   # below the ephemeral range (32768+)
        port_busy $p || port_busy $((p + 1)) || port_busy $((p + 2)) || port_busy $((p + 3)) || {
            echo $p; return; }
    done
    echo "bench: no free loopback ports" >&2; exit 1
}
wait_listening() {
    for _ in $(seq 200); do
        port_busy "$1" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench: server on port $1 did not come up" >&2; exit 1
}

# Every per-IP and per-connection abuse limit off: all load comes from a few addresses.
LIMITS_OFF=(--max-connections-per-ip 0 --registrations-per-ip-per-sec 0 --max-registrations-per-ip 0
    --messages-per-conn-per-sec 0 --bytes-per-conn-per-sec 0 --max-relayed-bytes-per-conn 0
    --ban-threshold 0 --log-level error)
start_relay() {   # max_connections
    PORT=$(free_ports)
    ${PRIO[@]+"${PRIO[@]}"} "$RELAY_BIN" --listen 127.0.0.1:$PORT --health-listen 127.0.0.1:$((PORT + 1)) \
        --stun-listen 127.0.0.1:$((PORT + 2)) --dashboard-listen 127.0.0.1:$((PORT + 3)) \
        --max-connections "$1" "${LIMITS_OFF[@]}" ${RELAY_EXTRA:-} 2>>bench/bin/relay-stderr.txt &
    SERVER_PID=$!
    wait_listening "$PORT"
}
start_redis() {
    PORT=$(free_ports)
    ${PRIO[@]+"${PRIO[@]}"} redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        --loglevel warning --logfile bench/bin/redis-log.txt &
    SERVER_PID=$!
    wait_listening "$PORT"
}

# run <label> <relay|redis> <relay_load args...>: one run on a fresh server; the result line is
# stored in R_<label>.
run() {
    local label=$1 mode=$2 line rc=0
    shift 2
    if [ "$mode" = relay ]; then RELAY_BIN=${RELAY_BIN:-$RELAY} start_relay $((${CONNS_NEEDED:-64} + 64)); else start_redis; fi
    line=$(${PRIO[@]+"${PRIO[@]}"} "$LOAD" --mode "$mode" --port "$PORT" --server-pid "$SERVER_PID" --quiet "$@") || rc=$?
    cleanup
    echo "$label $line" >>"$RUNS"
    [ $rc -eq 0 ] || echo "bench: run $label reported problems (exit $rc): $line" >&2
    printf -v "R_$label" '%s' "$line"
    printf '.' >&2
}
val() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
calc() { awk "BEGIN { printf \"$1\", ($2) }"; }

echo "bench: relay vs Redis, ${SECS}s per run (progress dots on stderr)" >&2
SIZES="64 1024 16384"
for s in $SIZES; do
    CONNS_NEEDED=$((2 * PAIRS)) run "relay_$s" relay --pairs "$PAIRS" --window "$WINDOW" \
        --size "$s" --duration "$SECS" --warmup "$WARMUP"
    run "redis_$s" redis --pairs "$PAIRS" --window "$WINDOW" --size "$s" --duration "$SECS" \
        --warmup "$WARMUP"
done
BACKENDS=epoll
[ -x "$RELAY_POLL" ] && BACKENDS="epoll poll"
bin_of() { if [ "$1" = poll ]; then echo "$RELAY_POLL"; else echo "$RELAY"; fi; }
# How many of n reservations the descriptor limit lets the relay and the tool hold.
held_for() { if [ "$1" -le $((FD_MAX - 200)) ]; then echo "$1"; else echo $((FD_MAX - 200)); fi; }
lat_conns=$(held_for "$LAT_CONNS")
for b in $BACKENDS; do
    RELAY_BIN=$(bin_of $b) CONNS_NEEDED=$lat_conns run "lat_relay_$b" relay --conns "$lat_conns" \
        --group 100 --spread --pairs "$LAT_PAIRS" --rate "$LAT_RATE" --window 256 \
        --size "$LAT_SIZE" --duration "$SECS" --warmup "$WARMUP"
done
run lat_redis redis --pairs "$LAT_PAIRS" --rate "$LAT_RATE" --window 256 --size "$LAT_SIZE" \
    --duration "$SECS" --warmup "$WARMUP"
# Reconnect storms: n reservations on one network id connect at once (a relay restart on a large
# network), as many as the descriptor limit allows.
STORM_CONNS=${BENCH_STORM_CONNS:-"5000 10000 20000"}
[ "${BENCH_QUICK:-0}" = 1 ] && STORM_CONNS=${BENCH_STORM_CONNS:-"1000 2000"}
STORM_LABELS=
for n in $STORM_CONNS; do
    use=$(held_for "$n")
    # The one load tool reads every byte for all n clients, so it answers the 101s late: the
    # register timeout is raised so the relay does not reap clients the tool is slow to serve.
    RELAY_EXTRA="--register-timeout-secs 600" RELAY_BIN=$RELAY CONNS_NEEDED=$use run "storm_$n" relay \
        --storm --spread --conns "$use" --setup-secs 900
    # The floor: the same mandated bytes over as many loopback connections, written by a program
    # that does nothing else (bench/tcp_floor.c), right after the storm.
    v=R_storm_$n
    printf -v "F_storm_$n" '%s' "$(${PRIO[@]+"${PRIO[@]}"} "$FLOOR" --conns "$use" \
        --bytes "$(val "${!v}" mandated_bytes)")"
    STORM_LABELS="$STORM_LABELS $n"
done
IDLE_LABELS=
for n in $IDLE_CONNS; do
    use=$(held_for "$n")
    # When the descriptor limit caps the count, the reservations held ping faster so the relay
    # still answers n reservations' worth of pings per second.
    ping=$(calc %.3f "30 * $use / $n")
    for b in $BACKENDS; do
        RELAY_BIN=$(bin_of $b) CONNS_NEEDED=$use run "idle_${n}_$b" relay --conns "$use" \
            --group 100 --spread --pairs 0 --ping-secs "$ping" --duration "$IDLE_SECS"
    done
    IDLE_LABELS="$IDLE_LABELS $n"
done

# ---------------------------------------------------------------- idle over a veth link
# On loopback the relay's send of each pong runs its client's whole TCP receive too (the
# packet is delivered inline, in the sender's system call), while the relay's own receive of
# each ping is billed to the client. Over a veth pair with threaded NAPI the receive work of
# each side runs in that side's NAPI kernel thread, as it does behind a NIC: the relay process
# pays for its system calls and its transmit path, and the relay side's NAPI thread shows the
# host's receive work for the relay's traffic. Both are printed; the clients' side is not the
# relay's cost. Needs root (network namespaces), iproute2 and ethtool; skipped otherwise.
VETH_N=
for n in $IDLE_CONNS; do VETH_N=$n; done
VETH_SKIP=
if [ "$(id -u)" != 0 ]; then VETH_SKIP="needs root for network namespaces"
elif ! command -v ip >/dev/null 2>&1; then VETH_SKIP="iproute2 not installed"
elif ! command -v ethtool >/dev/null 2>&1; then VETH_SKIP="ethtool not installed"
fi
veth_setup() {   # relay namespace, client namespace, relay device, client device
    local nsr=$1 nsc=$2 vr=$3 vc=$4
    ip netns add "$nsr" && VETH_NS="$VETH_NS $nsr" && ip netns add "$nsc" && VETH_NS="$VETH_NS $nsc" &&
        ip link add "$vr" type veth peer name "$vc" &&
        ip link set "$vr" netns "$nsr" && ip link set "$vc" netns "$nsc" &&
        ip -n "$nsr" addr add 10.255.0.1/24 dev "$vr" && ip -n "$nsc" addr add 10.255.0.2/24 dev "$vc" || return 1
    local pair
    for pair in "$nsr:$vr" "$nsc:$vc"; do
        local ns=${pair%%:*} dev=${pair#*:}
        ip -n "$ns" link set lo up && ip -n "$ns" link set "$dev" up || return 1
        # veth takes the NAPI path only for skbs it may GRO: TSO off, and GRO switched on
        # explicitly (a device that starts with it on never sets up NAPI); then NAPI threaded.
        ip netns exec "$ns" ethtool -K "$dev" tso off gro off >/dev/null 2>&1 &&
            ip netns exec "$ns" ethtool -K "$dev" gro on >/dev/null 2>&1 &&
            ip netns exec "$ns" sh -c "echo 1 > /sys/class/net/$dev/threaded" || return 1
    done
    # Up to 64k reservations from the one client address.
    ip netns exec "$nsc" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
}
if [ -z "$VETH_SKIP" ] && [ -n "$VETH_N" ]; then
    nsr=digbench-relay-$$ nsc=digbench-clients-$$ vr=dbr$$ vc=dbc$$
    if veth_setup "$nsr" "$nsc" "$vr" "$vc"; then
        napi=$(pgrep "^napi/$vr-" | head -n 1)
        use=$(held_for "$VETH_N")
        ping=$(calc %.3f "30 * $use / $VETH_N")
        vport=7000
        ip netns exec "$nsr" ${PRIO[@]+"${PRIO[@]}"} "$RELAY" --listen 10.255.0.1:$vport \
            --health-listen 127.0.0.1:$((vport + 1)) --stun-listen 127.0.0.1:$((vport + 2)) \
            --dashboard-listen 127.0.0.1:$((vport + 3)) --max-connections $((use + 64)) \
            "${LIMITS_OFF[@]}" 2>>bench/bin/relay-stderr.txt &
        SERVER_PID=$!
        for _ in $(seq 200); do
            ip netns exec "$nsr" bash -c "exec 3<>/dev/tcp/10.255.0.1/$vport" 2>/dev/null && break
            sleep 0.05
        done
        line=$(ip netns exec "$nsc" ${PRIO[@]+"${PRIO[@]}"} "$LOAD" --mode relay --host 10.255.0.1 \
            --port $vport --server-pid "$SERVER_PID" ${napi:+--rx-pid "$napi"} --quiet --conns "$use" \
            --group 100 --pairs 0 --ping-secs "$ping" --duration "$IDLE_SECS") || true
        cleanup
        echo "idle_veth_$VETH_N $line" >>"$RUNS"
        R_idle_veth=$line
        [ -n "$napi" ] || VETH_SKIP="no NAPI thread appeared for the veth device"
    else
        VETH_SKIP="could not set up the namespaces and veth pair"
    fi
    veth_teardown
    printf '.' >&2
fi
echo >&2

# ---------------------------------------------------------------- the table
model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "dig-relay vs redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on $(nproc) x ${model:-unknown CPU}, Linux $(uname -r), $(date -u +%Y-%m-%d)"
echo "load average when the runs started: $LOAD_AT_START (anything else busy skews every figure)$([ ${#PRIO[@]} -gt 0 ] && echo "; servers and tool at nice $NICE")"
echo
echo "Throughput: closed loop, $PAIRS pairs, window $WINDOW per pair, ${SECS}s (MB = 10^6 bytes; relay wire = JSON frame text)"
printf '%-8s | %12s %9s %9s %8s %7s %7s | %12s %9s %8s %7s %7s | %7s %7s %7s  %s\n' \
    payload "relay msg/s" "payload" "wire" "p99 us" "cpu%" "us/msg" \
    "redis msg/s" "MB/s" "p99 us" "cpu%" "us/msg" "msgs x" "bytes x" "cpu x" "goal"
for s in $SIZES; do
    r=R_relay_$s d=R_redis_$s
    r=${!r} d=${!d}
    rm=$(val "$r" msgs_per_s) dm=$(val "$d" msgs_per_s)
    rp=$(val "$r" payload_mb_s) rw=$(val "$r" wire_mb_s) dp=$(val "$d" payload_mb_s)
    rcpu=$(val "$r" server_cpu_s) dcpu=$(val "$d" server_cpu_s)
    rdel=$(val "$r" delivered) ddel=$(val "$d" delivered)
    ratio_m=$(calc %.2f "$dm > 0 ? $rm / $dm : 0")
    ratio_b=$(calc %.2f "$dp > 0 ? $rw / $dp : 0")
    rus=$(calc %.3f "$rdel > 0 ? $rcpu * 1e6 / $rdel : 0")
    dus=$(calc %.3f "$ddel > 0 ? $dcpu * 1e6 / $ddel : 0")
    ratio_c=$(calc %.2f "$rus > 0 ? $dus / $rus : 0")
    case $s in
        64) goal="msgs x >= 1.00: $([ "$(calc %d "$ratio_m >= 1.0")" = 1 ] && echo met || echo MISSED)" ;;
        16384)
            # relay CPU per wire byte over Redis's CPU per payload byte (issue 17's goal)
            cpub=$(calc %.2f "$rw > 0 && $dus > 0 ? ($rus * $rp / ($rw * $s)) / ($dus / $s) : 0")
            goal="bytes x >= 1.00: $([ "$(calc %d "$ratio_b >= 1.0")" = 1 ] && echo met || echo MISSED); cpu/B x = $cpub <= 0.70: $([ "$(calc %d "$cpub > 0 && $cpub <= 0.7")" = 1 ] && echo met || echo MISSED)" ;;
        *) goal="(reported)" ;;
    esac
    label=$s; [ "$s" = 1024 ] && label=1KiB; [ "$s" = 16384 ] && label=16KiB; [ "$s" = 64 ] && label=64B
    printf '%-8s | %12.0f %9.1f %9.1f %8.0f %7.1f %7.2f | %12.0f %9.1f %8.0f %7.1f %7.2f | %7s %7s %7s  %s\n' \
        "$label" "$rm" "$rp" "$rw" "$(val "$r" p99_us)" "$(val "$r" server_cpu_pct)" \
        "$rus" "$dm" "$dp" "$(val "$d" p99_us)" "$(val "$d" server_cpu_pct)" "$dus" \
        "$ratio_m" "$ratio_b" "$ratio_c" "$goal"
done
echo "(msgs x = relay msg/s / Redis msg/s; bytes x = relay wire MB/s / Redis payload MB/s;"
echo " cpu% = server CPU over the run, us/msg = server CPU microseconds per delivered message,"
echo " cpu x = Redis us/msg / relay us/msg: above 1 the relay spends less CPU per message;"
echo " cpu/B x = relay CPU per wire byte / Redis CPU per payload byte)"
echo
echo "Latency: open loop $LAT_RATE msg/s over $LAT_PAIRS pairs, $LAT_SIZE-byte payloads"
printf '%-36s | %9s %9s %9s %9s %9s  %s\n' server msg/s "p50 us" "p99 us" "p99.9 us" "max us" goal
for b in $BACKENDS; do
    v=R_lat_relay_$b
    v=${!v}
    p99=$(val "$v" p99_us)
    printf '%-36s | %9.0f %9.1f %9.1f %9.1f %9.1f  %s\n' \
        "relay ($b), $(val "$v" conns) reservations" "$(val "$v" msgs_per_s)" \
        "$(val "$v" p50_us)" "$p99" "$(val "$v" p999_us)" "$(val "$v" max_us)" \
        "p99 <= 1000 us: $([ "$(calc %d "$p99 <= 1000")" = 1 ] && echo met || echo MISSED)"
done
printf '%-36s | %9.0f %9.1f %9.1f %9.1f %9.1f\n' \
    "redis, $(val "$R_lat_redis" conns) connections" "$(val "$R_lat_redis" msgs_per_s)" \
    "$(val "$R_lat_redis" p50_us)" "$(val "$R_lat_redis" p99_us)" "$(val "$R_lat_redis" p999_us)" \
    "$(val "$R_lat_redis" max_us)"
echo
echo "Reconnect storm: n reservations on one network id connect at once (register + get_peers each);"
echo "settled when all are registered and answered and the relay has sent nothing else for 0.5 s."
echo "Pings: a probe on another network every 5 ms (the loop's responsiveness), and the storming"
echo "reservations' own (500/s over them; they also wait behind what their sockets already hold)."
echo "Bytes: received by the clients; mandated = what the protocol makes the relay send (one"
echo "peer_connected per pair and one peers entry per pair, plus each asker's own entry)."
echo "Floor: the writer CPU of bench/bin/tcp_floor sending the mandated bytes over as many loopback"
echo "connections and doing nothing else; ours = CPU - floor."
printf '%-30s | %8s %8s %8s %8s %9s %10s %10s %10s | %10s %10s %10s  %s\n' reservations "CPU s" "floor s" "ours s" \
    "wall s" "GB sent" "mandated" "extra %" "RSS KiB" "probe p99" "probe max" "member p99" goal
for n in $STORM_LABELS; do
    v=R_storm_$n
    v=${!v}
    c=$(val "$v" conns)
    label="$n"
    [ "$c" = "$n" ] || label="$n ($c held: ulimit -n)"
    cpu=$(val "$v" relay_cpu_s) p99=$(val "$v" ping_p99_us)
    f=F_storm_$n
    floor=$(val " ${!f}" floor_cpu_s)
    goal=
    [ "$n" = 5000 ] && goal="<= 2 s CPU: $([ "$(calc %d "$cpu <= 2")" = 1 ] && echo met || echo MISSED); probe p99 < 100 ms: $([ "$(calc %d "$p99 < 100000")" = 1 ] && echo met || echo MISSED)"
    [ "$(val "$v" settled)" = 1 ] || goal="did not settle; $goal"
    printf '%-30s | %8s %8s %8s %8s %9s %10s %10s %10s | %8.1f ms %7.1f ms %7.1f ms  %s\n' "$label" "$cpu" \
        "${floor:--}" "$([ -n "$floor" ] && calc %.2f "$cpu - $floor" || echo -)" "$(val "$v" wall_s)" "$(calc %.2f "$(val "$v" rx_bytes) / 1e9")" \
        "$(calc %.2f "$(val "$v" mandated_bytes) / 1e9")" \
        "$(calc %.1f "100 * $(val "$v" extra_bytes) / $(val "$v" mandated_bytes)")" \
        "$(val "$v" server_rss_kb)" "$(calc %.1f "$p99 / 1000")" "$(calc %.1f "$(val "$v" ping_max_us) / 1000")" \
        "$(calc %.1f "$(val "$v" member_ping_p99_us) / 1000")" "$goal"
done
echo
echo "Idle reservations: registered, 100 per network id, JSON ping every 30 s each, ${IDLE_SECS}s measured"
echo "(more than ulimit -n allows ($FD_MAX) are stood in for by fewer reservations pinging at the same total rate)"
printf '%-44s | %10s %10s %12s %10s  %s\n' reservations "RSS base" "RSS held" "per resv." "CPU %" goal
for n in $IDLE_LABELS; do
    for b in $BACKENDS; do
        v=R_idle_${n}_$b
        v=${!v}
        c=$(val "$v" conns)
        label="$n ($b)"
        [ "$c" = "$n" ] || label="$n ($b): $c held, ping every $(calc %.1f "30 * $c / $n") s"
        per=$(val "$v" rss_per_conn_b) cpu=$(val "$v" server_cpu_pct)
        goal="<= 4096 B: $([ "$(calc %d "$per <= 4096")" = 1 ] && echo met || echo MISSED)"
        [ "$n" = 50000 ] && goal="$goal; < 2% CPU: $([ "$(calc %d "$cpu < 2")" = 1 ] && echo met || echo MISSED)"
        printf '%-44s | %8s K %8s K %10s B %10s  %s\n' "$label" "$(val "$v" server_rss_base_kb)" \
            "$(val "$v" server_rss_ready_kb)" "$per" "$cpu" "$goal"
    done
done
echo
echo "Idle reservations over a veth link (relay and clients in two network namespaces, each side's"
echo "kernel receive in its NAPI thread, as behind a NIC), ${IDLE_SECS}s measured"
if [ -n "$VETH_SKIP" ] || [ -z "${R_idle_veth:-}" ]; then
    echo "skipped: ${VETH_SKIP:-the run did not complete}"
else
    v=$R_idle_veth
    c=$(val "$v" conns) cpu=$(val "$v" server_cpu_pct) rx=$(val "$v" rx_cpu_pct)
    label="$VETH_N (epoll)"
    [ "$c" = "$VETH_N" ] || label="$VETH_N (epoll): $c held, ping every $(calc %.1f "30 * $c / $VETH_N") s"
    printf '%-44s | %12s %14s %12s  %s\n' reservations "relay CPU %" "its receive %" "together %" goal
    printf '%-44s | %12s %14s %12s  %s\n' "$label" "$cpu" "$rx" "$(calc %.2f "$cpu + $rx")" \
        "relay process < 2%: $([ "$(calc %d "$cpu < 2")" = 1 ] && echo met || echo MISSED); with its receive: $([ "$(calc %d "$cpu + $rx < 2")" = 1 ] && echo met || echo MISSED)"
fi
