# Sourced by the bench scripts that start several servers on loopback: a free port (free_port),
# whether one is taken (port_busy), and waiting until something listens (wait_listening).
# Messages name $BENCH_NAME.
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
