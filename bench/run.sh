#!/usr/bin/env bash
# bench/run.sh — what `make bench` runs.  A benchmark, not a test: exit 0 unless the set-up
# fails or the audit count does not cover what the backend saw (exit 1).
#
#   wrk → client NGINX (mutual TLS, keep-alive) → gateway NGINX → backend NGINX, on 127.0.0.1
#
# measures, alternating a, b, c, a, b, c … in the same run:
#   (a) the gateway's plain mutual-TLS proxy server (no module)
#   (b) the gateway's server with "juki on" (rate limits + audit record, Redis AOF always)
#   (c) an OpenResty-style peer (bench/peer/): Debian's lua module in the same nginx binary,
#       same certificates, backend and Redis, one EVAL per request (purpose check,
#       fixed-window limit, 4-field XADD)
# and prints requests/s, p50 and p99 of each round, the medians, the ratios b/a and b/c and
# the p99 delta b-a, CPU time per request of each process, Redis memory per request, and
# the audit records (decision=allow) written during the (b) rounds against the requests the
# backend saw from (b) (and the peer's records against what the backend saw from (c)).
#
# Environment (defaults):
#   BENCH_SECONDS=10  BENCH_ROUNDS=3  BENCH_WARMUP=3 (s per variant)
#   BENCH_CONNECTIONS=32  BENCH_THREADS=1  (wrk -c / -t)
#   BENCH_PIN=0        1: gateway pinned to CPU 1, everything else to CPU 0 (taskset)
#   BENCH_PERF=0       1: perf record the gateway worker during the last (b) round, print top symbols
#   BENCH_REDIS_TIMEOUT=50ms  (juki_redis timeout=)
#   BENCH_REDIS_PARAMS (unset)  more juki_redis parameters, e.g. connections=2 (a diagnostic)
#   BENCH_PORT_BASE (unset)  set: ports are BASE+81..83 client, +443..445 gateway/peer,
#                    +90..92 backend, +379 redis (instead of 18081.. + BENCH_PORT_OFFSET)
#   BENCH_PORT_OFFSET=0  BENCH_KEEP=0 (1: keep the temp dir)   JUKI_MODULE, NGINX
set -euo pipefail
B_PROG=bench/run.sh
# shellcheck source=bench/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/peer/peer.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/peer/peer.sh"

P_CC=$((18083 + B_OFF)) P_GC=$((18445 + B_OFF)) P_BC=$((18092 + B_OFF))
if [[ -n ${BENCH_PORT_BASE:-} ]]; then
    [[ $BENCH_PORT_BASE =~ ^[0-9]+$ ]] && ((BENCH_PORT_BASE >= 1024 && BENCH_PORT_BASE <= 64500)) ||
        die "BENCH_PORT_BASE must be 1024..64500"
    pb=$BENCH_PORT_BASE
    P_CA=$((pb + 81)) P_CB=$((pb + 82)) P_CC=$((pb + 83))
    P_GA=$((pb + 443)) P_GB=$((pb + 444)) P_GC=$((pb + 445))
    P_BA=$((pb + 90)) P_BB=$((pb + 91)) P_BC=$((pb + 92))
    P_R=$((pb + 379))
fi

secs=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
warm=${BENCH_WARMUP:-3}
for v in "$secs" "$rounds" "$warm"; do
    [[ $v =~ ^[0-9]+$ ]] || die "BENCH_SECONDS/ROUNDS/WARMUP must be integers"
done
((secs >= 1 && secs <= 300 && rounds >= 1 && rounds <= 20)) || die "BENCH_SECONDS 1..300, BENCH_ROUNDS 1..20"
[[ ${BENCH_PERF:-0} == 1 ]] && b_need perf

p_need
for p in $P_CC $P_GC $P_BC; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then die "port $p is in use"; fi
done
BENCH_CLIENT_EXTRA="${BENCH_CLIENT_EXTRA:-}
    $(p_client_extra)"
b_prepare
trap p_teardown EXIT
p_write_configs
b_start_all
p_start

hw="$(nproc) CPU ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -r)"
printf '# juki-gateway benchmark\n\n'
printf 'machine: %s\n' "$hw"
printf 'nginx: %s; redis: %s; wrk: %s\n' "$("$B_NGINX" -v 2>&1 | sed 's/.*: //')" \
    "$(redis-server --version | awk '{ print $3 }' | sed 's/v=//')" "$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
printf 'wrk -t%s -c%s -d%ss --latency; rounds %s (a,b,c alternating), warm-up %ss each; pin=%s; juki_redis timeout=%s\n' \
    "$B_WRK_THREADS" "$B_WRK_CONNS" "$secs" "$rounds" "$warm" "$B_PIN" "$B_REDIS_TIMEOUT"
printf 'peer (c): lua-nginx-module %s, resty.redis %s\n' \
    "$(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null || echo '?')" \
    "$(dpkg-query -W -f='${Version}' lua-nginx-redis 2>/dev/null || echo '?')"
printf 'redis: appendonly %s, appendfsync %s\n' "$(b_redis CONFIG GET appendonly | tail -1)" \
    "$(b_redis CONFIG GET appendfsync | tail -1)"
# what one acknowledged call waits for at least: a synchronous write to the
# disk the AOF is on (Redis's fdatasync per event-loop turn)
probe=$(b_rdir)/dsync.probe
dsync=$(LC_ALL=C dd if=/dev/zero of="$probe" bs=3k count=1000 oflag=dsync 2>&1 |
    awk '/copied/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^s,?$/) s = $i }
         END { if (s) printf "%.0f", s * 1000 }')
rm -f "$probe"
printf 'disk: 3 KiB O_DSYNC write in the Redis dir: %s us each (1000 writes)\n' "${dsync:-?}"
printf 'dir: %s\n\n' "$B_DIR"

variants="a b c"
declare -A V_PORT=([a]=$P_CA [b]=$P_CB [c]=$P_CC)
declare -A V_NAME=([a]="(a) plain mTLS proxy" [b]="(b) juki on" [c]="(c) lua peer")

# sanity: every path answers 200 before anything is measured
for v in $variants; do
    p=${V_PORT[$v]}
    s=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Juki-Purpose: $B_PURPOSE" \
        -H "Juki-Operator: $B_OPERATOR" "http://127.0.0.1:$p/v1/residents/?code=$B_CODE" || true)
    [[ $s == 200 ]] || { tail -5 "$B_DIR"/logs/*-error.log >&2; die "($v) port $p answered $s, not 200"; }
done

if ((warm > 0)); then
    for v in $variants; do b_wrk "${V_PORT[$v]}" "$warm" "$B_DIR/warm-$v.txt" 0; done
fi

# process groups measured; "gateway" is the variant's gateway worker (the peer's for (c))
procs="gateway client backend redis"
gw_inst=gateway
proc_pid() {
    case $1 in
    redis) b_redis_pid ;;
    gateway) b_worker "$gw_inst" ;;
    *) b_worker "$1" ;;
    esac
}
redis_mem() { b_redis INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
peer_len() { b_redis XLEN peer:audit | tr -d '\r'; }

cursor=$(b_audit_cursor)
be_b_start=$(b_lines "$B_DIR/logs/backend-b.log")
be_c_start=$(b_lines "$B_DIR/logs/backend-c.log")
peer_start=$(peer_len)
declare -A R   # R[v,round,key]
perf_out=

for ((i = 1; i <= rounds; i++)); do
    for v in $variants; do
        port=${V_PORT[$v]}
        gw_inst=gateway
        [[ $v == c ]] && gw_inst=peer
        declare -A pid=() t0=()
        for p in $procs; do
            pid[$p]=$(proc_pid "$p")
            t0[$p]=$(b_cpu_ticks "${pid[$p]}")
        done
        be_log=$B_DIR/logs/backend-$v.log
        be0=$(b_lines "$be_log")
        mem0=$(redis_mem)
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
        for p in $procs; do
            R[$v,$i,cpu_$p]=$(($(b_cpu_ticks "${pid[$p]}") - t0[$p]))
        done
        R[$v,$i,mem]=$(($(redis_mem) - mem0))
        for k in requests rps p50_us p99_us max_us non2xx sockerr; do R[$v,$i,$k]=$(b_wrkval "$out" "$k"); done
        R[$v,$i,backend]=$(($(b_lines "$be_log") - be0))
    done
done

be_b=$(($(b_lines "$B_DIR/logs/backend-b.log") - be_b_start))
be_c=$(($(b_lines "$B_DIR/logs/backend-c.log") - be_c_start))
peer_recs=$(($(peer_len) - peer_start))
read -r allow deny done_ <<<"$(b_audit_count "$cursor")"

ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
hz=$(getconf CLK_TCK)

printf '## Rounds\n\n'
printf '| round | variant | requests | req/s | p50 ms | p99 ms | max ms | non-2xx | socket errors | backend saw | redis mem B/req |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for ((i = 1; i <= rounds; i++)); do
    for v in $variants; do
        printf '| %d | %s | %d | %.0f | %s | %s | %s | %d | %d | %d | %s |\n' "$i" "$v" "${R[$v,$i,requests]}" \
            "${R[$v,$i,rps]}" "$(ms "${R[$v,$i,p50_us]}")" "$(ms "${R[$v,$i,p99_us]}")" \
            "$(ms "${R[$v,$i,max_us]}")" "${R[$v,$i,non2xx]}" "${R[$v,$i,sockerr]}" "${R[$v,$i,backend]}" \
            "$(awk -v m="${R[$v,$i,mem]}" -v n="${R[$v,$i,requests]}" 'BEGIN { printf "%.0f", n ? m / n : 0 }')"
    done
done

declare -A M
for v in $variants; do
    for k in rps p50_us p99_us; do
        vals=()
        for ((i = 1; i <= rounds; i++)); do vals+=("${R[$v,$i,$k]}"); done
        M[$v,$k]=$(median "${vals[@]}")
    done
    # CPU microseconds and Redis memory bytes per request, over all rounds of the variant
    reqs=0 mem=0 tall=0
    for ((i = 1; i <= rounds; i++)); do
        reqs=$((reqs + R[$v,$i,requests]))
        mem=$((mem + R[$v,$i,mem]))
    done
    for p in $procs; do
        t=0
        for ((i = 1; i <= rounds; i++)); do t=$((t + R[$v,$i,cpu_$p])); done
        tall=$((tall + t))
        M[$v,cpu_$p]=$(awk -v t="$t" -v n="$reqs" -v hz="$hz" 'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }')
    done
    M[$v,cpu_all]=$(awk -v t="$tall" -v n="$reqs" -v hz="$hz" 'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }')
    M[$v,mem]=$(awk -v m="$mem" -v n="$reqs" 'BEGIN { printf "%.0f", n ? m / n : 0 }')
done
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.3f", y ? x / y : 0 }'; }
ratio_ba=$(ratio "${M[b,rps]}" "${M[a,rps]}")
ratio_bc=$(ratio "${M[b,rps]}" "${M[c,rps]}")
ratio_ca=$(ratio "${M[c,rps]}" "${M[a,rps]}")
d99=$(awk -v a="${M[a,p99_us]}" -v b="${M[b,p99_us]}" 'BEGIN { printf "%+.2f", (b - a) / 1000 }')
met() { awk -v x="$1" -v op="$2" -v y="$3" 'BEGIN { ok = (op == ">=") ? x >= y : x <= y; print ok ? "met" : "NOT met" }'; }

printf '\n## Summary (req/s, p50, p99: median of %d rounds; CPU and memory: all rounds)\n\n' "$rounds"
printf 'CPU µs of utime+stime per request (/proc/PID/stat over the measured rounds); gateway = the\n'
printf "variant's gateway worker ((c): the peer's); redis mem = INFO used_memory delta per request\n\n"
printf '| variant | req/s | p50 ms | p99 ms | CPU µs/req gateway | client | backend | redis | all | redis mem B/req |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for v in $variants; do
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${V_NAME[$v]}" "${M[$v,rps]}" \
        "$(ms "${M[$v,p50_us]}")" "$(ms "${M[$v,p99_us]}")" "${M[$v,cpu_gateway]}" "${M[$v,cpu_client]}" \
        "${M[$v,cpu_backend]}" "${M[$v,cpu_redis]}" "${M[$v,cpu_all]}" "${M[$v,mem]}"
done
printf '\nratio b/a (req/s): %s   (target >= 0.85: %s)\n' "$ratio_ba" "$(met "$ratio_ba" '>=' 0.85)"
printf 'ratio b/c (req/s): %s   (target >= 1.5: %s)\n' "$ratio_bc" "$(met "$ratio_bc" '>=' 1.5)"
printf 'ratio c/a (req/s): %s\n' "$ratio_ca"
printf 'p99 delta b-a:     %s ms (target <= +1 ms: %s)\n' "$d99" "$(met "$d99" '<=' 1.0)"
printf 'redis CPU (b):     %s µs/req (target <= 8: %s)\n' "${M[b,cpu_redis]}" "$(met "${M[b,cpu_redis]}" '<=' 8)"
printf 'redis mem (b):     %s B/req (target <= 250: %s)\n' "${M[b,mem]}" "$(met "${M[b,mem]}" '<=' 250)"

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
# the peer writes its record before it forwards, so the same must hold for (c)
printf 'peer records (peer:audit, all decisions) during the (c) rounds: %s; backend saw from (c): %s\n' \
    "$peer_recs" "$be_c"
if ((peer_recs >= be_c)); then
    printf 'peer vs backend: OK\n'
else
    printf 'peer vs backend: MISMATCH — the peer forwarded %d requests without a record\n' $((be_c - peer_recs))
    status=1
fi

# a variant's non-2xx answers are explained by its error log (e.g. a Redis timeout)
printf '\n## Error logs (whole run, warm-up included: lines at error, crit, alert, emerg)\n\n'
for n in gateway peer; do
    f=$B_DIR/logs/$n-error.log
    c=$(grep -cE '\[(error|crit|alert|emerg)\]' "$f" 2>/dev/null || true)
    printf '%s: %s\n' "$n" "${c:-0}"
    grep -E '\[(error|crit|alert|emerg)\]' "$f" 2>/dev/null |
        sed -E 's/^[0-9/]+ [0-9:]+ //; s/[0-9]+#[0-9]+: \*[0-9]+ //; s/, client: .*//' |
        sort | uniq -c | sort -rn | head -3 | sed 's/^/    /' || true
done

if [[ -n $perf_out && -s $perf_out ]]; then
    printf '\n## perf: gateway worker during the last (b) round (self time, top 30)\n\n```\n'
    { perf report -i "$perf_out" --stdio --no-children -g none --sort dso,symbol 2>/dev/null |
        grep -v '^#' | grep '%' | head -30; } || true
    printf '```\n'
fi
exit $status
