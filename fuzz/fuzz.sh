#!/usr/bin/env bash
# fuzz/fuzz.sh regress|run OUT TARGET... — called by fuzz/Makefile.
#
#   regress  every file of corpus/<t>/ and regressions/<t>/ (README* aside),
#            one process per file so that every failing input is named;
#            ends with "fuzz regress: N passed, M failed"
#   run      each target for FUZZ_SECONDS (default 60) with -max_total_time
#            on OUT/corpus/<t> (a copy of corpus/<t>; the committed corpus
#            never grows), dictionary dict/<t>.dict when there is one,
#            extra libFuzzer flags from FUZZ_FLAGS; prints executions per
#            target; stops at the first target that fails (its input is in
#            OUT/artifacts/<t>/)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode=${1:?usage: fuzz.sh regress|run OUT TARGET...}
out=${2:?usage: fuzz.sh regress|run OUT TARGET...}
shift 2

case $mode in
regress)
    passed=0
    failed=0
    for t in "$@"; do
        n=0
        while IFS= read -r -d '' f; do
            n=$((n + 1))
            log=$out/$t.regress.log
            if "$out/$t" "$f" >"$log" 2>&1; then
                passed=$((passed + 1))
            else
                failed=$((failed + 1))
                echo "fuzz regress: $t FAILED on ${f#"$here"/}"
                grep -E -A2 'FUZZ ASSERTION|runtime error|ERROR: (Address|Leak)Sanitizer|ERROR: libFuzzer' \
                    "$log" | grep -v -E '^--$|^ +#[0-9]' | head -4 | sed 's/^/    /'
            fi
        done < <(find "$here/corpus/$t" "$here/regressions/$t" -type f \
                 ! -name 'README*' -print0 2>/dev/null | sort -z)
        echo "fuzz regress: $t: $n inputs"
    done
    echo "fuzz regress: $passed passed, $failed failed"
    [[ $failed -eq 0 ]]
    ;;

run)
    secs=${FUZZ_SECONDS:-60}
    for t in "$@"; do
        mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
        cp -n "$here/corpus/$t/"* "$out/corpus/$t/" 2>/dev/null || true
        dict=()
        [[ -f $here/dict/$t.dict ]] && dict=(-dict="$here/dict/$t.dict")
        log=$out/$t.run.log
        echo "fuzz run: $t for $secs s"
        # shellcheck disable=SC2086
        if ! "$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 "${dict[@]}" -artifact_prefix="$out/artifacts/$t/" \
            ${FUZZ_FLAGS:-} "$out/corpus/$t" >"$log" 2>&1; then
            tail -40 "$log"
            echo "fuzz run: $t FAILED; the input is in $out/artifacts/$t/"
            exit 1
        fi
        awk -v t="$t" '
            /^stat::number_of_executed_units:/ { e = $2 }
            /^stat::average_exec_per_sec:/     { s = $2 }
            /^stat::new_units_added:/          { u = $2 }
            /DONE +cov:/                        { for (i = 1; i < NF; i++) {
                                                     if ($i == "cov:") c = $(i + 1)
                                                     if ($i == "corp:") k = $(i + 1) } }
            END { printf "fuzz run: %s ok: %d executions, %d/s, %d new inputs, corpus %s, %s edges\n", t, e, s, u, k, c }
        ' "$log"
    done
    ;;

*)
    echo "usage: fuzz.sh regress|run OUT TARGET..." >&2
    exit 2
    ;;
esac
