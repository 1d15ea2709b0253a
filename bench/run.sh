#!/usr/bin/env bash
# bench/run.sh — what `make bench` runs.  A benchmark, not a test: exit 0 unless the set-up
# fails or the audit count does not cover what the backend saw (exit 1).
#
#   wrk → client NGINX (mutual TLS, keep-alive) → gateway NGINX → backend NGINX, on 127.0.0.1
#
# measures, alternating in the same run and on the same processes:
#   (a) the gateway's plain mutual-TLS proxy server (no module)
#   (b) the gateway's server with "juki on" (rate limits + audit record, Redis AOF always)
# and prints requests/s, p50 and p99 of each round, the medians, the ratio b/a and the p99
# delta, CPU time per request of each process, and the audit records (decision=allow) written
# during the (b) rounds against the requests the backend saw from (b).
#
# Environment (defaults):
#   BENCH_SECONDS=10  BENCH_ROUNDS=3  BENCH_WARMUP=3 (s per variant)
#   BENCH_CONNECTIONS=32  BENCH_THREADS=1  (wrk -c / -t)
#   BENCH_PIN=0        1: gateway pinned to CPU 1, everything else to CPU 0 (taskset)
#   BENCH_PERF=0       1: perf record the gateway worker during the last (b) round, print top symbols
#   BENCH_REDIS_TIMEOUT=50ms  (juki_redis timeout=)
#   BENCH_PORT_OFFSET=0  BENCH_KEEP=0 (1: keep the temp dir)   JUKI_MODULE, NGINX
set -euo pipefail
B_PROG=bench/run.sh
# shellcheck source=bench/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

secs=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
warm=${BENCH_WARMUP:-3}
for v in "$secs" "$rounds" "$warm"; do
    [[ $v =~ ^[0-9]+$ ]] || die "BENCH_SECONDS/ROUNDS/WARMUP must be integers"
done
((secs >= 1 && secs <= 300 && rounds >= 1 && rounds <= 20)) || die "BENCH_SECONDS 1..300, BENCH_ROUNDS 1..20"
[[ ${BENCH_PERF:-0} == 1 ]] && b_need perf

b_prepare
b_start_all

hw="$(nproc) CPU ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -r)"
printf '# juki-gateway benchmark\n\n'
printf 'machine: %s\n' "$hw"
printf 'nginx: %s; redis: %s; wrk: %s\n' "$("$B_NGINX" -v 2>&1 | sed 's/.*: //')" \
    "$(redis-server --version | awk '{ print $3 }' | sed 's/v=//')" "$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
printf 'wrk -t%s -c%s -d%ss --latency; rounds %s (a,b alternating), warm-up %ss each; pin=%s; juki_redis timeout=%s\n' \
    "$B_WRK_THREADS" "$B_WRK_CONNS" "$secs" "$rounds" "$warm" "$B_PIN" "$B_REDIS_TIMEOUT"
printf 'redis: appendonly yes, appendfsync %s\n' "$(b_redis CONFIG GET appendfsync | tail -1)"
printf 'dir: %s\n\n' "$B_DIR"

# sanity: both paths answer 200 before anything is measured
for p in $P_CA $P_CB; do
    s=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Juki-Purpose: $B_PURPOSE" \
        -H "Juki-Operator: $B_OPERATOR" "http://127.0.0.1:$p/v1/residents/?code=$B_CODE" || true)
    [[ $s == 200 ]] || { tail -5 "$B_DIR"/logs/*-error.log >&2; die "port $p answered $s, not 200"; }
done

if ((warm > 0)); then
    b_wrk "$P_CA" "$warm" "$B_DIR/warm-a.txt" 0
    b_wrk "$P_CB" "$warm" "$B_DIR/warm-b.txt" 0
fi

procs="gateway client backend redis"
proc_pid() {
    case $1 in
    redis) b_redis_pid ;;
    *) b_worker "$1" ;;
    esac
}

cursor=$(b_audit_cursor)
be_b_start=$(b_lines "$B_DIR/logs/backend-b.log")
declare -A R   # R[v,round,key]
perf_out=

for ((i = 1; i <= rounds; i++)); do
    for v in a b; do
        port=$P_CA
        [[ $v == b ]] && port=$P_CB
        declare -A t0=()
        for p in $procs; do t0[$p]=$(b_cpu_ticks "$(proc_pid "$p")"); done
        be_log=$B_DIR/logs/backend-$v.log
        be0=$(b_lines "$be_log")
        perf_pid=
        if [[ ${BENCH_PERF:-0} == 1 && $v == b && $i == "$rounds" ]]; then
            perf_out=$B_DIR/perf.data
            perf record -q -F 1999 -g -o "$perf_out" -p "$(b_worker gateway)" -- sleep "$secs" >/dev/null 2>&1 &
            perf_pid=$!
        fi
        out=$B_DIR/round-$i-$v.txt
        b_wrk "$port" "$secs" "$out" 0 || { cat "$out" >&2; die "wrk failed"; }
        [[ -n $perf_pid ]] && wait "$perf_pid" 2>/dev/null || true
        sleep 0.3
        for k in requests rps p50_us p99_us max_us non2xx sockerr; do R[$v,$i,$k]=$(b_wrkval "$out" "$k"); done
        R[$v,$i,backend]=$(($(b_lines "$be_log") - be0))
        for p in $procs; do
            R[$v,$i,cpu_$p]=$(($(b_cpu_ticks "$(proc_pid "$p")") - t0[$p]))
        done
    done
done

be_b=$(($(b_lines "$B_DIR/logs/backend-b.log") - be_b_start))
read -r allow deny done_ <<<"$(b_audit_count "$cursor")"

ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
hz=$(getconf CLK_TCK)

printf '## Rounds\n\n'
printf '| round | variant | requests | req/s | p50 ms | p99 ms | max ms | non-2xx | socket errors | backend saw |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for ((i = 1; i <= rounds; i++)); do
    for v in a b; do
        printf '| %d | %s | %d | %.0f | %s | %s | %s | %d | %d | %d |\n' "$i" "$v" "${R[$v,$i,requests]}" \
            "${R[$v,$i,rps]}" "$(ms "${R[$v,$i,p50_us]}")" "$(ms "${R[$v,$i,p99_us]}")" \
            "$(ms "${R[$v,$i,max_us]}")" "${R[$v,$i,non2xx]}" "${R[$v,$i,sockerr]}" "${R[$v,$i,backend]}"
    done
done

declare -A M
for v in a b; do
    for k in rps p50_us p99_us; do
        vals=()
        for ((i = 1; i <= rounds; i++)); do vals+=("${R[$v,$i,$k]}"); done
        M[$v,$k]=$(median "${vals[@]}")
    done
    # CPU microseconds per request, over all rounds of the variant
    reqs=0
    for ((i = 1; i <= rounds; i++)); do reqs=$((reqs + R[$v,$i,requests])); done
    for p in $procs; do
        t=0
        for ((i = 1; i <= rounds; i++)); do t=$((t + R[$v,$i,cpu_$p])); done
        M[$v,cpu_$p]=$(awk -v t="$t" -v n="$reqs" -v hz="$hz" 'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }')
    done
done
ratio=$(awk -v a="${M[a,rps]}" -v b="${M[b,rps]}" 'BEGIN { printf "%.3f", b / a }')
d99=$(awk -v a="${M[a,p99_us]}" -v b="${M[b,p99_us]}" 'BEGIN { printf "%+.2f", (b - a) / 1000 }')
rps_ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.85) ? "met" : "NOT met" }')
p99_ok=$(awk -v d="$d99" 'BEGIN { print (d <= 1.0) ? "met" : "NOT met" }')

printf '\n## Summary (median of %d rounds)\n\n' "$rounds"
printf '| variant | req/s | p50 ms | p99 ms | CPU µs/req gateway | client | backend | redis |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for v in a b; do
    name="(a) plain mTLS proxy"
    [[ $v == b ]] && name="(b) juki on"
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$name" "${M[$v,rps]}" "$(ms "${M[$v,p50_us]}")" \
        "$(ms "${M[$v,p99_us]}")" "${M[$v,cpu_gateway]}" "${M[$v,cpu_client]}" "${M[$v,cpu_backend]}" "${M[$v,cpu_redis]}"
done
printf '\nratio b/a (req/s): %s   (target >= 0.85: %s)\n' "$ratio" "$rps_ok"
printf 'p99 delta b-a:     %s ms (target <= +1 ms: %s)\n' "$d99" "$p99_ok"

printf '\n## Audit\n\n'
printf 'audit records written during the (b) rounds: allow=%s deny=%s completion=%s\n' "$allow" "$deny" "$done_"
printf 'requests the backend saw from (b):          %s\n' "$be_b"
status=0
if ((allow >= be_b)); then
    if ((allow == be_b)); then
        printf 'audit vs backend: OK (equal)\n'
    else
        printf 'audit vs backend: OK (%d allow records more than forwarded: acknowledged, then not forwarded)\n' $((allow - be_b))
    fi
else
    printf 'audit vs backend: MISMATCH — the backend saw %d requests without an allow record\n' $((be_b - allow))
    status=1
fi

if [[ -n $perf_out && -s $perf_out ]]; then
    printf '\n## perf: gateway worker during the last (b) round (self time, top 30)\n\n```\n'
    { perf report -i "$perf_out" --stdio --no-children -g none --sort dso,symbol 2>/dev/null |
        grep -v '^#' | grep '%' | head -30; } || true
    printf '```\n'
fi
exit $status
