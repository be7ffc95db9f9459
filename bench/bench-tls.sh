#!/usr/bin/env bash
# TLS benchmark (bench/README.md, "TLS"): the relay terminating TLS itself against HAProxy
# (OpenSSL) terminating TLS in front of the plain relay, side by side in one run, with the same
# load tool (bench/bin/relay_load --tls, a BearSSL client), the same ECDSA P-256 server
# certificate and TLS 1.2 with ECDHE-ECDSA-AES128-GCM on both sides.
#
#   a. CPU per relayed 16 KiB message: PAIRS sender->target pairs over wss://, closed loop;
#      relay CPU, plus HAProxy's for the second setup, divided by messages delivered.
#   b. Full handshakes per second with client authentication (ECDSA P-256 client certificate,
#      CertificateVerify checked; no resumption): relay --tls-client-auth required against
#      HAProxy `verify required` with the client certificate as its CA; CPU per handshake too.
#   c. RSS per idle TLS reservation (IDLE_CONNS registered wss:// connections held idle), next
#      to a plain ws:// reservation and to HAProxy's own RSS per TLS connection.
#
# Rounds alternate between the two setups so background load hits both; each figure is the
# median over ROUNDS. HAProxy runs with one thread, like the relay. Every raw result line is
# kept in bench/bin/tls-runs.txt.
# Environment: ROUNDS (3), SECS (5), PAIRS (8), WINDOW (32), PARALLEL (8 handshakes at once),
#              IDLE_CONNS (2000), DIG_RELAY_BIN (./dig-relay), BENCH_NICE (-15; 0: no change).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
PAIRS=${PAIRS:-8}
WINDOW=${WINDOW:-32}
PARALLEL=${PARALLEL:-8}
IDLE_CONNS=${IDLE_CONNS:-2000}
RELAY=${DIG_RELAY_BIN:-./dig-relay}
LOAD=bench/bin/relay_load
WORK=$(mktemp -d /tmp/bench-tls.XXXXXX)
RUNS=bench/bin/tls-runs.txt
BENCH_NAME=tls
. bench/multi-lib.sh

for cmd in haproxy openssl; do
    command -v $cmd >/dev/null || { echo "bench-tls: $cmd not installed (apt-get install -y $cmd)" >&2; exit 1; }
done
for f in "$RELAY" "$LOAD"; do
    [ -x "$f" ] || { echo "bench-tls: $f is not built (run make bench-tls)" >&2; exit 1; }
done
"$RELAY" --version | grep -q 'features:.* tls' || { echo "bench-tls: $RELAY has no TLS built in" >&2; exit 1; }

NICE=${BENCH_NICE:--15}
PRIO=()
if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null; then PRIO=(nice -n "$NICE"); fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p bench/bin
: >"$RUNS"

# Certificates: the relay's (served by both setups) and a client's, PEM for the servers, DER for
# the load tool.
for n in relay client; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/$n.key.pem" \
        -subj "/CN=$n" -days 2 -out "$WORK/$n.crt.pem" 2>/dev/null
    openssl x509 -in "$WORK/$n.crt.pem" -outform DER -out "$WORK/$n.crt.der"
    openssl pkey -in "$WORK/$n.key.pem" -outform DER -out "$WORK/$n.key.der"
done
cat "$WORK/relay.crt.pem" "$WORK/relay.key.pem" >"$WORK/haproxy.pem"

LIMITS_OFF=(--max-connections-per-ip 0 --registrations-per-ip-per-sec 0 --max-registrations-per-ip 0
    --messages-per-conn-per-sec 0 --bytes-per-conn-per-sec 0 --max-relayed-bytes-per-conn 0
    --ban-threshold 0 --max-connections $((IDLE_CONNS + 256)) --log-level error)
# start_relay [TLS flags...]: the relay on a free port; sets RELAY_PORT and RELAY_PID.
start_relay() {
    RELAY_PORT=$(free_port)
    ${PRIO[@]+"${PRIO[@]}"} "$RELAY" --listen 127.0.0.1:$RELAY_PORT --health-listen 127.0.0.1:$(free_port) \
        --stun-listen 127.0.0.1:$(free_port) --dashboard-listen 127.0.0.1:$(free_port) \
        "${LIMITS_OFF[@]}" "$@" 2>>bench/bin/tls-relay-stderr.txt &
    RELAY_PID=$!
    PIDS+=("$RELAY_PID")
    wait_listening "$RELAY_PORT"
}
# start_haproxy <bind options>: HAProxy terminating TLS in front of the relay at RELAY_PORT;
# sets HA_PORT and HA_PID.
start_haproxy() {
    HA_PORT=$(free_port)
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $((IDLE_CONNS + 256))
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend tls
    bind 127.0.0.1:$HA_PORT ssl crt $WORK/haproxy.pem $1
    default_backend relay
backend relay
    server relay 127.0.0.1:$RELAY_PORT
EOF
    ${PRIO[@]+"${PRIO[@]}"} haproxy -q -db -f "$WORK/haproxy.cfg" 2>>bench/bin/tls-haproxy-stderr.txt &
    HA_PID=$!
    PIDS+=("$HA_PID")
    wait_listening "$HA_PORT"
}
load() { ${PRIO[@]+"${PRIO[@]}"} "$LOAD" --tls --server-cert "$WORK/relay.crt.der" --quiet "$@"; }
keep() { echo "$1 $2" >>"$RUNS"; }

MSG_ARGS=(--pairs "$PAIRS" --size 16384 --window "$WINDOW" --duration "$SECS" --warmup 1)
HS_ARGS=(--mode handshake --tls-cert "$WORK/client.crt.der" --tls-key "$WORK/client.key.der"
    --connect-burst "$PARALLEL" --duration "$SECS" --warmup 1)
: >"$WORK/a_relay"; : >"$WORK/a_ha"; : >"$WORK/a_mps_relay"; : >"$WORK/a_mps_ha"
: >"$WORK/b_relay"; : >"$WORK/b_ha"; : >"$WORK/b_cpu_relay"; : >"$WORK/b_cpu_ha"
echo "bench-tls: $ROUNDS rounds of ${SECS}s per setup (progress dots on stderr)" >&2
for round in $(seq "$ROUNDS"); do
    # (a) relayed 16 KiB messages
    start_relay --tls-cert "$WORK/relay.crt.pem" --tls-key "$WORK/relay.key.pem" --tls-client-auth none
    line=$(load --port "$RELAY_PORT" --server-pid "$RELAY_PID" "${MSG_ARGS[@]}")
    stop_all; keep "msg-relay-tls" "$line"; printf . >&2
    awk -v c="$(val "$line" server_cpu_s)" -v n="$(val "$line" delivered)" 'BEGIN { print c * 1e6 / n }' >>"$WORK/a_relay"
    val "$line" msgs_per_s >>"$WORK/a_mps_relay"
    start_relay
    start_haproxy ""
    line=$(load --port "$HA_PORT" --server-pid "$RELAY_PID" --rx-pid "$HA_PID" "${MSG_ARGS[@]}")
    stop_all; keep "msg-haproxy" "$line"; printf . >&2
    awk -v c="$(val "$line" server_cpu_s)" -v p="$(val "$line" rx_cpu_pct)" -v s="$(val "$line" secs)" \
        -v n="$(val "$line" delivered)" 'BEGIN { print (c + p * s / 100) * 1e6 / n }' >>"$WORK/a_ha"
    val "$line" msgs_per_s >>"$WORK/a_mps_ha"

    # (b) full handshakes with client authentication
    start_relay --tls-cert "$WORK/relay.crt.pem" --tls-key "$WORK/relay.key.pem"
    line=$(load --port "$RELAY_PORT" --server-pid "$RELAY_PID" "${HS_ARGS[@]}")
    stop_all; keep "hs-relay-tls" "$line"; printf . >&2
    val "$line" hs_per_s >>"$WORK/b_relay"; val "$line" cpu_us_per_hs >>"$WORK/b_cpu_relay"
    start_relay
    start_haproxy "verify required ca-file $WORK/client.crt.pem"
    line=$(load --port "$HA_PORT" --server-pid "$RELAY_PID" --rx-pid "$HA_PID" "${HS_ARGS[@]}")
    stop_all; keep "hs-haproxy" "$line"; printf . >&2
    val "$line" hs_per_s >>"$WORK/b_ha"; val "$line" cpu_us_per_hs >>"$WORK/b_cpu_ha"
done

# (c) idle reservations: the relay's RSS per TLS and per plain reservation, HAProxy's per TLS
# connection in front of the plain relay.
# Setting up thousands of TLS reservations takes a handshake each (about 100 a second on a busy
# two-core machine with Debian's BearSSL).
IDLE=(--pairs 0 --conns "$IDLE_CONNS" --duration 2 --warmup 0 --setup-secs $((60 + IDLE_CONNS / 20)))
start_relay --tls-cert "$WORK/relay.crt.pem" --tls-key "$WORK/relay.key.pem" --tls-client-auth none
line=$(load --port "$RELAY_PORT" --server-pid "$RELAY_PID" "${IDLE[@]}")
stop_all; keep "idle-relay-tls" "$line"; printf . >&2
c_tls=$(val "$line" rss_per_conn_b)
start_relay
line=$(${PRIO[@]+"${PRIO[@]}"} "$LOAD" --quiet --port "$RELAY_PORT" --server-pid "$RELAY_PID" "${IDLE[@]}")
stop_all; keep "idle-relay-plain" "$line"; printf . >&2
c_plain=$(val "$line" rss_per_conn_b)
start_relay
start_haproxy ""
line=$(load --port "$HA_PORT" --server-pid "$HA_PID" "${IDLE[@]}")
stop_all; keep "idle-haproxy" "$line"; echo >&2
c_ha=$(val "$line" rss_per_conn_b)

a_r=$(median <"$WORK/a_relay"); a_h=$(median <"$WORK/a_ha")
b_r=$(median <"$WORK/b_relay"); b_h=$(median <"$WORK/b_ha")
bc_r=$(median <"$WORK/b_cpu_relay"); bc_h=$(median <"$WORK/b_cpu_ha")
printf '\nTLS: relay terminating TLS (BearSSL) vs HAProxy 2.6 (OpenSSL 3) in front of the plain relay\n'
printf 'load average at the end: %s; %s rounds of %ss, medians\n\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$ROUNDS" "$SECS"
printf '| measure | relay TLS | HAProxy + plain relay | relay / HAProxy |\n|---|---|---|---|\n'
printf '| (a) CPU per relayed 16 KiB message (both processes), us | %.0f | %.0f | %.2f |\n' "$a_r" "$a_h" \
    "$(awk -v a="$a_r" -v b="$a_h" 'BEGIN { print a / b }')"
printf '| (a) messages/s delivered (closed loop, %s pairs x %s) | %.0f | %.0f | |\n' "$PAIRS" "$WINDOW" \
    "$(median <"$WORK/a_mps_relay")" "$(median <"$WORK/a_mps_ha")"
printf '| (b) full handshakes/s with client authentication (%s at once) | %.0f | %.0f | %.2f |\n' "$PARALLEL" \
    "$b_r" "$b_h" "$(awk -v a="$b_r" -v b="$b_h" 'BEGIN { print a / b }')"
printf '| (b) CPU per handshake (both processes), us | %.0f | %.0f | %.2f |\n' "$bc_r" "$bc_h" \
    "$(awk -v a="$bc_r" -v b="$bc_h" 'BEGIN { print a / b }')"
printf '| (c) RSS per idle reservation (%s held), bytes | %s (TLS) | %s (HAProxy) + %s (relay, plain) | |\n' \
    "$IDLE_CONNS" "$c_tls" "$c_ha" "$c_plain"
echo
echo "raw lines: $RUNS"
