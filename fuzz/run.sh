#!/bin/sh
# Runs libFuzzer harnesses: fuzz/run.sh SECONDS fuzz/bin/fuzz_<name>...
#
# Each harness runs for SECONDS over a scratch corpus (fuzz/bin/work-<name>, kept between runs)
# plus its committed seeds (fuzz/corpus/<name>) with its dictionary (fuzz/<name>.dict).
# FUZZ_JOBS harnesses (default 2) run at once, so CI's 60 s per harness costs about
# 60 s * harnesses / FUZZ_JOBS of wall time. Every harness's executions, speed and coverage are
# printed at the end. The script fails when any harness crashed, leaked, hit undefined
# behaviour, timed out on one input or ran out of memory: libFuzzer exits non-zero on each of
# those, and the log is also searched for sanitizer reports in case one was only printed.
# A crashing input is saved as fuzz/bin/<name>-crash-* (or -leak-, -timeout-, -oom-); shrink it
# with fuzz/bin/fuzz_<name> -minimize_crash=1 -runs=100000 <file>
# and commit it under fuzz/regress/<name>/ once the bug is fixed (tests/test_fuzz_regress.c
# replays that directory in `make test`).
secs=${1:?usage: fuzz/run.sh SECONDS BIN...}
shift
jobs=${FUZZ_JOBS:-2}
[ "$#" -gt 0 ] || { echo "fuzz/run.sh: no harnesses given" >&2; exit 2; }
mkdir -p fuzz/bin

# One harness, in the background: log to fuzz/bin/<name>.log, exit status to fuzz/bin/<name>.rc.
run_one() {
    bin=$1 name=$2
    corpus=fuzz/corpus/$name work=fuzz/bin/work-$name
    mkdir -p "$work"
    set -- -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/bin/$name-"
    [ -f "fuzz/$name.dict" ] && set -- "$@" -dict="fuzz/$name.dict"
    set -- "$@" "$work"
    [ -d "$corpus" ] && set -- "$@" "$corpus"
    "$bin" "$@" >"fuzz/bin/$name.log" 2>&1
    echo $? >"fuzz/bin/$name.rc"
}

names=""
running=""
started=$(date +%s)
for bin in "$@"; do
    name=$(basename "$bin" | sed 's/^fuzz_//')
    names="$names $name"
    rm -f "fuzz/bin/$name.rc" "fuzz/bin/$name.log"
    if [ ! -x "$bin" ]; then
        echo "missing harness binary $bin" >"fuzz/bin/$name.log"
        echo 127 >"fuzz/bin/$name.rc"
        continue
    fi
    # At the limit, wait for the oldest: every harness runs for the same time.
    set -- $running
    if [ "$#" -ge "$jobs" ]; then
        wait "$1"
        shift
        running="$*"
    fi
    echo "== fuzz $name for ${secs}s"
    run_one "$bin" "$name" &
    running="$running $!"
done
wait

reports='ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:'
reports="$reports|SUMMARY: UndefinedBehaviorSanitizer"
status=0
printf '%-8s %12s %9s %7s %8s %7s  %s\n' harness execs exec/s cov ft corpus result
for name in $names; do
    log=fuzz/bin/$name.log
    rc=$(cat "fuzz/bin/$name.rc" 2>/dev/null || echo 127)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -n 1)
    cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    result=ok
    if [ "$rc" -ne 0 ]; then
        result="FAIL (exit $rc)"
    elif grep -qE "$reports" "$log"; then
        result="FAIL (sanitizer report)"
    fi
    printf '%-8s %12s %9s %7s %8s %7s  %s\n' "$name" "${execs:--}" "${speed:--}" "${cov:--}" \
        "${ft:--}" "${corp:--}" "$result"
    if [ "$result" != ok ]; then
        status=1
        echo "---- tail of $log"
        tail -n 40 "$log"
        echo "----"
    fi
done
echo "fuzzing took $(( $(date +%s) - started ))s wall time, $jobs at a time"
exit $status
