#!/bin/sh
# Runs each libFuzzer binary for the given number of seconds over its seed corpus and dictionary.
# Any crash, leak or sanitizer report makes the fuzzer exit non-zero, and so this script.
secs=$1; shift
status=0
for bin in "$@"; do
    name=$(basename "$bin" | sed 's/^fuzz_//')
    corpus=fuzz/corpus/$name
    work=fuzz/bin/work-$name
    mkdir -p "$work" "$corpus"
    dict=""
    [ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
    echo "== fuzz $name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -print_final_stats=1 $dict "$work" "$corpus" \
            >"fuzz/bin/$name.log" 2>&1; then
        echo "FAIL fuzz $name (see fuzz/bin/$name.log)"; tail -n 40 "fuzz/bin/$name.log"; status=1
    else
        grep -E 'stat::number_of_executed_units|cov:' "fuzz/bin/$name.log" | tail -n 2
    fi
done
exit $status
