#!/usr/bin/env bash
# scripts/stop.sh — stop everything scripts/run.sh started (what `make stop` calls).
# Idempotent: what is not running is skipped. Only processes named in the run dir's
# pidfiles are signalled.
#
# Environment: JUKI_RUN_DIR (default: ./run), JUKI_REDIS_PORT (6390), JUKI_PG_PORT (6391),
# as for scripts/run.sh.
set -euo pipefail

prog=scripts/stop.sh
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
run_dir=${JUKI_RUN_DIR:-run}
[[ $run_dir == /* ]] || run_dir=$root/$run_dir
redis_port=${JUKI_REDIS_PORT:-6390}
pg_port=${JUKI_PG_PORT:-6391}

# shellcheck source=scripts/proc.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/proc.sh"

wait_gone() { # PID SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

stop_nginx() { # NAME
    local name=$1 pidfile=$run_dir/$1/nginx.pid pid comm
    if [[ ! -f $pidfile ]]; then
        printf '%s: %s: not running\n' "$prog" "$name"
        return 0
    fi
    pid=$(<"$pidfile")
    if ! [[ $pid =~ ^[0-9]+$ ]] || ! alive "$pid"; then
        rm -f -- "$pidfile"
        printf '%s: %s: not running (stale pidfile removed)\n' "$prog" "$name"
        return 0
    fi
    if [[ -r /proc/$pid/comm ]]; then
        comm=$(</proc/"$pid"/comm)
        if [[ $comm != nginx* ]]; then
            rm -f -- "$pidfile"
            printf '%s: %s: pid %s is not nginx (%s); stale pidfile removed\n' "$prog" "$name" "$pid" "$comm"
            return 0
        fi
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 10; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || {
            printf '%s: %s (pid %s) does not exit\n' "$prog" "$name" "$pid" >&2
            return 1
        }
    fi
    rm -f -- "$pidfile"
    printf '%s: %s: stopped (pid %s)\n' "$prog" "$name" "$pid"
}

# the archiver first (SIGTERM: it finishes its batch), then what it talks to
stop_archiver() {
    local pidfile=$run_dir/archiver.pid pid comm
    if [[ ! -f $pidfile ]]; then
        printf '%s: archiver: not running\n' "$prog"
        return 0
    fi
    pid=$(<"$pidfile")
    if ! [[ $pid =~ ^[0-9]+$ ]] || ! alive "$pid"; then
        rm -f -- "$pidfile"
        printf '%s: archiver: not running (stale pidfile removed)\n' "$prog"
        return 0
    fi
    comm=$(</proc/"$pid"/comm) 2>/dev/null || comm=''
    if [[ $comm != jukictl* ]]; then
        rm -f -- "$pidfile"
        printf '%s: archiver: pid %s is not jukictl (%s); stale pidfile removed\n' "$prog" "$pid" "$comm"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 15; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || {
            printf '%s: archiver (pid %s) does not exit\n' "$prog" "$pid" >&2
            return 1
        }
    fi
    rm -f -- "$pidfile"
    printf '%s: archiver: stopped (pid %s)\n' "$prog" "$pid"
}

rc=0
stop_archiver || rc=1
if [[ -f $run_dir/pg/data/postmaster.pid ]]; then
    "$root/scripts/pg.sh" stop "$run_dir/pg" "$pg_port" || rc=1
    printf '%s: postgresql: stopped\n' "$prog"
else
    printf '%s: postgresql: not running\n' "$prog"
fi
stop_nginx gateway || rc=1
stop_nginx backend || rc=1
if [[ -d $run_dir/redis ]]; then
    "$root/scripts/redis.sh" stop "$run_dir/redis" "$redis_port" || rc=1
else
    printf '%s: redis: not running\n' "$prog"
fi
exit "$rc"
