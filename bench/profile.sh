#!/usr/bin/env bash
# bench/profile.sh — where the time goes in (b) (and, for comparison, in (a)).
#
# Same deployment as bench/run.sh.  For each variant: `perf record -a -g` (whole machine)
# during a wrk run, then prints
#   1. CPU split by process (comm) — gateway vs client vs backend vs redis vs wrk vs kernel
#   2. the top self-time symbols of the gateway worker
#   3. the top self-time symbols of redis-server ((b) only)
#   4. the module's own functions (ngx_http_juki_*) and the libraries they call
# plus Redis's INFO commandstats for the FCALL cost (and the commands it runs) as Redis measures it.
#
# Environment: PROFILE_SECONDS=8, PROFILE_VARIANTS="a b", PROFILE_TOP=25, and those of run.sh.
set -euo pipefail
B_PROG=bench/profile.sh
# shellcheck source=bench/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
b_need perf

secs=${PROFILE_SECONDS:-8}
top=${PROFILE_TOP:-25}
[[ $secs =~ ^[0-9]+$ ]] && ((secs >= 1 && secs <= 120)) || die "PROFILE_SECONDS 1..120"

b_prepare
b_start_all
b_wrk "$P_CA" 2 "$B_DIR/warm-a.txt" 0
b_wrk "$P_CB" 2 "$B_DIR/warm-b.txt" 0

report() { # DATA ARGS...
    local d=$1
    shift
    { perf report -i "$d" --stdio --no-children -g none "$@" 2>/dev/null |
        grep -v '^#' | grep '%' | head -"$top"; } || true
}

for v in ${PROFILE_VARIANTS:-a b}; do
    port=$P_CA
    [[ $v == b ]] && port=$P_CB
    data=$B_DIR/perf-$v.data
    b_redis CONFIG RESETSTAT >/dev/null
    perf record -q -a -g -F 999 -o "$data" -- sleep "$secs" >/dev/null 2>&1 &
    pp=$!
    b_wrk "$port" "$secs" "$B_DIR/prof-$v.txt" 0
    wait "$pp" || true
    gw=$(b_worker gateway)
    rp=$(b_redis_pid)
    printf '\n# variant (%s): %s req/s, p99 %s us\n' "$v" "$(b_wrkval "$B_DIR/prof-$v.txt" rps)" \
        "$(b_wrkval "$B_DIR/prof-$v.txt" p99_us)"
    printf '\n## CPU by process (share of all samples, both CPUs)\n```\n'
    report "$data" --sort comm,pid
    printf '```\n\n## gateway worker (pid %s): top self symbols\n```\n' "$gw"
    report "$data" --pid "$gw" --percentage relative --sort dso,symbol
    printf '```\n'
    if [[ $v == b ]]; then
        printf '\n## gateway worker: by shared object\n```\n'
        report "$data" --pid "$gw" --percentage relative --sort dso
        printf '```\n\n## gateway worker: inclusive time of module entry points and crypto\n```\n'
        { perf report -i "$data" --stdio --children -g none --pid "$gw" --percentage relative --sort symbol 2>/dev/null |
            grep -E 'ngx_http_juki|HMAC|EVP_|redisAsync|redisFormat|ngx_http_core_run_phases|ngx_http_upstream_init|SSL_read|SSL_write|ngx_ssl_' |
            head -"$top"; } || true
        printf '```\n\n## redis-server (pid %s): top self symbols\n```\n' "$rp"
        report "$data" --pid "$rp" --percentage relative --sort dso,symbol
        printf '```\n\n## redis INFO commandstats / persistence\n```\n'
        b_redis INFO commandstats | grep -E 'fcall|rpush|hset|cmdstat_exists:' || true
        b_redis INFO persistence | grep -E 'aof_delayed_fsync|aof_last_write_status' || true
        printf '```\n'
    fi
done
