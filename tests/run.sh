#!/bin/sh
# Runs each test binary given as an argument, sums the "RESULT <passed> <failed> <skipped>" line
# every binary prints last, and ends with the one summary line CI reads. Exits non-zero on any
# failure, including a binary that crashed or exited non-zero.
passed=0 failed=0 skipped=0
for t in "$@"; do
    out=$("./$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v '^RESULT '
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL $t: exited $rc without a result line"; failed=$((failed + 1)); continue
    fi
    p=$(echo "$line" | cut -d' ' -f2); f=$(echo "$line" | cut -d' ' -f3); s=$(echo "$line" | cut -d' ' -f4)
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $t: exited $rc"; failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
