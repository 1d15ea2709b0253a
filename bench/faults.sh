#!/usr/bin/env bash
# bench/faults.sh — what `make faults` runs: the audit invariant under load while Redis, the
# gateway and the backend fail in turn.  Same deployment as bench/run.sh (lib.sh), load on
# the (b) path only (wrk → client → mutual TLS → gateway with "juki on" → backend).
#
# Per phase: wrk runs FAULT_PHASE_SECONDS; FAULT_LEAD seconds in, the fault is injected; when
# it ends, curl polls through the client every 50 ms until a 200 (time to recover).  Then,
# once the load has stopped and in-flight requests have settled, the phase is counted:
#   wrk answers by status, requests the backend saw, allow records written in the phase,
#   worker crashes other than a worker this script killed ("exited on signal" in the
#   gateway's error log), time to recover.
#
# FAILS (exit 1) when, in any phase or in total, the backend saw more requests than there are
# allow records, when a worker crashed on its own, or when service did not come back within
# 2 s of the fault ending.  Exit 2: the set-up itself failed.
#
# Environment:
#   FAULT_PHASES          phases to run, in order (default: all, see below)
#   FAULT_PHASE_SECONDS   load per phase (8)        FAULT_LEAD  seconds before the fault (2)
#   FAULT_RECOVERY_MS     recovery limit (2000)     FAULT_MD    also write the table to this file
#   BENCH_REDIS_TIMEOUT   juki_redis timeout= (50ms), BENCH_CONNECTIONS (32), BENCH_PORT_OFFSET
#
# Phases: baseline redis-kill9 client-pause redis-oom worker-kill9 backend-down backend-slow
#         reload redis-empty
set -euo pipefail
B_PROG=${B_PROG:-bench/faults.sh}
# shellcheck source=bench/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

all_phases="baseline redis-kill9 client-pause redis-oom worker-kill9 backend-down backend-slow reload redis-empty"
phases=${FAULT_PHASES:-$all_phases}
psecs=${FAULT_PHASE_SECONDS:-8}
lead=${FAULT_LEAD:-2}
rec_limit=${FAULT_RECOVERY_MS:-2000}
budget=${FAULT_BUDGET_SECONDS:-330}
for p in $phases; do
    [[ " $all_phases " == *" $p "* ]] || die "unknown phase: $p (known: $all_phases)"
done
[[ $psecs =~ ^[0-9]+$ && $lead =~ ^[0-9]+$ ]] && ((psecs >= 4 && psecs <= 60 && lead < psecs - 2)) ||
    die "FAULT_PHASE_SECONDS 4..60 and FAULT_LEAD < FAULT_PHASE_SECONDS - 2"

now_ms() { date +%s%3N; }
t_start=$(now_ms)

b_prepare
b_start_all
B_WRK_THREADS=1

for i in 1 2 3 4 5 6 7 8 9 10; do
    [[ $(b_curl_b 2) == 200 ]] && break
    ((i == 10)) && die "the (b) path does not answer 200"
    sleep 0.3
done
b_wrk "$P_CB" 2 "$B_DIR/warm.txt" 1 # warm-up, not counted

gw_err=$B_DIR/logs/gateway-error.log
be_log=$B_DIR/logs/backend-b.log
fail=0
rows=()
tot_be=0 tot_allow=0

# recover: ms from now until a 200 through the client (polled every 50 ms), or "none"
recover() {
    local t0 t s i
    t0=$(now_ms)
    for ((i = 0; i < 200; i++)); do
        s=$(b_curl_b 1)
        t=$(now_ms)
        if [[ $s == 200 ]]; then
            echo $((t - t0))
            return 0
        fi
        ((t - t0 > 10000)) && break
        sleep 0.05
    done
    echo none
}

# inject PHASE: runs the fault, ends it, then prints the recovery time
inject() {
    local w m rp
    case $1 in
    baseline)
        ;;
    redis-kill9)
        rp=$(b_redis_pid)
        kill -KILL "$rp"
        sleep 1
        b_redis_start
        ;;
    client-pause)
        b_redis CLIENT PAUSE 1000 ALL >/dev/null
        sleep 1.0
        ;;
    redis-oom)
        b_redis CONFIG SET maxmemory-policy noeviction >/dev/null
        b_redis CONFIG SET maxmemory 1mb >/dev/null
        sleep 1.5
        b_redis CONFIG SET maxmemory 0 >/dev/null
        ;;
    worker-kill9)
        w=$(b_worker gateway)
        echo "$w" >>"$B_DIR/killed-pids" # inject runs in a subshell
        kill -KILL "$w"
        ;;
    backend-down)
        b_stop_nginx backend
        sleep 1.5
        b_start_nginx backend
        ;;
    backend-slow)
        m=$(b_master backend)
        w=$(b_worker backend)
        kill -STOP "$w" "$m"
        sleep 1.5
        kill -CONT "$m" "$w"
        ;;
    reload)
        b_write_policy 90000 # a changed policy: lower (still unreached) limits
        b_nginx gateway -q -t >/dev/null || die "the changed policy fails nginx -t"
        b_nginx gateway -s reload
        ;;
    redis-empty)
        # kill -9, then a fresh Redis with an empty data dir on the same port: everything
        # written before is gone (by design, counted from here on).  No acknowledgement is
        # possible while Redis is down, so the backend count taken then is exact.
        rp=$(b_redis_pid)
        kill -KILL "$rp"
        sleep 0.4
        b_lines "$be_log" >"$B_DIR/be_cut"
        b_redis_stop
        rm -rf "$B_DIR/redis-empty"
        mkdir -p "$B_DIR/redis-empty"
        echo "$B_DIR/redis-empty" >"$B_DIR/redis.dir"
        # an empty Redis has no function library either: the gateway's FCALLs fail (503,
        # nothing forwarded) until the operator loads it (jukictl function load)
        REDIS_FUNCTION=0 b_redis_start
        sleep 0.5
        REDIS_ACL=$B_ROOT/conf/juki-users.acl.in REDIS_SECRETS=$B_DIR/secrets \
            "$B_ROOT/scripts/redis.sh" load "$B_DIR/redis-empty" "$P_R" >/dev/null
        ;;
    esac
    recover
}

printf '# juki-gateway fault campaign\n\nmachine: %s CPU, %s; wrk -t1 -c%s, %ss per phase, fault at +%ss; juki_redis timeout=%s; dir %s\n\n' \
    "$(nproc)" "$(uname -r)" "$B_WRK_CONNS" "$psecs" "$lead" "$B_REDIS_TIMEOUT" "$B_DIR"

for ph in $phases; do
    if (($(now_ms) - t_start > budget * 1000)); then
        log "time budget (${budget}s) spent: skipping $ph and the rest"
        fail=1
        rows+=("| $ph | skipped: time budget | | | | | | | | | | |")
        continue
    fi
    cursor=$(b_audit_cursor)
    be0=$(b_lines "$be_log")
    err0=$(b_lines "$gw_err")
    rm -f "$B_DIR/be_cut"
    out=$B_DIR/phase-$ph.txt
    b_wrk "$P_CB" "$psecs" "$out" 1 &
    wp=$!
    sleep "$lead"
    rec=$(inject "$ph")
    wait "$wp" || true
    sleep 1 # in-flight requests settle (the backend answers at once)

    be1=$(b_lines "$be_log")
    if [[ $ph == redis-empty ]]; then
        be_cut=$(cat "$B_DIR/be_cut" 2>/dev/null || echo "$be0")
        read -r allow deny _ <<<"$(b_audit_count "")"
        be=$((be1 - be_cut))
        be_note="$((be_cut - be0)) before + $be"
    else
        read -r allow deny _ <<<"$(b_audit_count "$cursor")"
        be=$((be1 - be0))
        be_note=$be
    fi
    tot_be=$((tot_be + be))
    tot_allow=$((tot_allow + allow))

    # crashes: "exited on signal" lines of this phase not about a pid this script killed
    crashes=0
    crash_lines=$(tail -n +"$((err0 + 1))" "$gw_err" | grep -a 'exited on signal' || true)
    while read -r line; do
        [[ -n $line ]] || continue
        pid=$(sed -n 's/.*process \([0-9]*\) exited on signal.*/\1/p' <<<"$line")
        if ! grep -qx "$pid" "$B_DIR/killed-pids" 2>/dev/null; then
            crashes=$((crashes + 1))
            log "CRASH in $ph: $line"
        fi
    done <<<"$crash_lines"

    verdict=ok
    if ((be > allow)); then
        verdict="VIOLATION (+$((be - allow)))"
        fail=1
    fi
    ((crashes == 0)) || fail=1
    rec_s="$rec"
    if [[ $rec == none ]] || ((rec > rec_limit)); then
        rec_s="$rec (> ${rec_limit})"
        fail=1
    fi
    st() { b_wrkval "$out" "status_$1"; }
    other=$(($(b_wrkval "$out" requests) - $(st 200) - $(st 429) - $(st 502) - $(st 503) - $(st 504)))
    rows+=("| $ph | $(b_wrkval "$out" requests) | $(st 200) | $(st 429) | $(st 502) | $(st 503) | $(st 504) | $other | $(b_wrkval "$out" sockerr) | $be_note | $allow | $verdict | $crashes | $rec_s |")
    tmo=$(tail -n +"$((err0 + 1))" "$gw_err" | grep -a -c 'timed out after' || true)
    log "phase $ph done: backend $be_note, allow $allow, crashes $crashes, recovery $rec ms, redis-timeout log lines $tmo"
done

tot_verdict=ok
if ((tot_be > tot_allow)); then
    tot_verdict="VIOLATION (+$((tot_be - tot_allow)))"
    fail=1
fi

{
    printf '| phase | answered | 200 | 429 | 502 | 503 | 504 | other | socket errors | backend saw | allow records | backend ≤ allow | other crashes | recovery ms |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n'
    printf '%s\n' "${rows[@]}"
    printf '| **total** (checked parts) | | | | | | | | | %s | %s | %s | | |\n' "$tot_be" "$tot_allow" "$tot_verdict"
} | tee "${FAULT_MD:-/dev/null}"

printf '\ncampaign: %s in %d s\n' "$([[ $fail == 0 ]] && echo PASS || echo FAIL)" $((($(now_ms) - t_start) / 1000))
exit $fail
