# Sourced by the bench scripts that run several servers at once on loopback (bench-tls.sh,
# bench-cluster.sh) after they set BENCH_NAME and WORK: the servers started (PIDS, each added by
# the script) and stopped together (stop_all, also on exit, which removes $WORK), a free port
# (free_port), whether one is taken (port_busy), waiting until something listens
# (wait_listening), a field of relay_load's key=value line (val LINE KEY) and the median of
# numbers on stdin.
PIDS=()
stop_all() {
    for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((10000 + RANDOM % 22000))
        port_busy $p || { echo $p; return; }
    done
    echo "bench-$BENCH_NAME: no free loopback port" >&2; exit 1
}
wait_listening() {
    for _ in $(seq 200); do port_busy "$1" && return 0; sleep 0.05; done
    echo "bench-$BENCH_NAME: nothing listening on $1" >&2; exit 1
}
val() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
