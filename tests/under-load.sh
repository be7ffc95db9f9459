#!/bin/sh
# The suite on a busy machine (issue 17): runs `make test` RUNS times in a row (default 5) while
# stress-ng keeps every core busy with `--cpu N` (default: the number of cores), and stops at the
# first failing run. Each run's output goes to $DIG_UNDER_LOAD_LOGS (default /tmp) as
# under-load.<n>.log; one summary line per run is printed. Not part of CI's every run: CI's dry
# run executes it once and the result is recorded with the issue (`make test-under-load`).
set -u
cd "$(dirname "$0")/.." || exit 2
command -v stress-ng >/dev/null || { echo "skipped: stress-ng not installed"; exit 0; }
runs=${1:-5}
cpus=${STRESS_CPUS:-$(nproc)}
logs=${DIG_UNDER_LOAD_LOGS:-/tmp}
mkdir -p "$logs"
stress-ng --cpu "$cpus" --timeout 6h >/dev/null 2>&1 &
stress=$!
trap 'kill "$stress" 2>/dev/null' EXIT INT TERM
failed=0
n=1
while [ "$n" -le "$runs" ]; do
    start=$(date +%s)
    make test >"$logs/under-load.$n.log" 2>&1
    rc=$?
    echo "run $n of $runs under stress-ng --cpu $cpus: exit $rc after $(( $(date +%s) - start )) s:" \
        "$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logs/under-load.$n.log" | tail -n 1)"
    if [ "$rc" -ne 0 ]; then
        grep -E '^FAIL ' "$logs/under-load.$n.log"
        failed=1
        break
    fi
    n=$((n + 1))
done
exit "$failed"
