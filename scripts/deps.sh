#!/usr/bin/env bash
# scripts/deps.sh [GROUP...] — install what juki-gateway needs on Debian 12 (apt-get).
#
# Groups (default: build test run bench):
#   build  gcc make nginx-dev libhiredis-dev libssl-dev libpq-dev pkg-config
#   test   nginx redis-server postgresql openssl perl + Perl test modules, curl,
#          valgrind
#   run    nginx redis-server postgresql openssl curl ca-certificates (make run)
#   bench  run + wrk + libnginx-mod-http-lua lua-nginx-redis (make bench's Lua peer, (c))
#   fuzz   clang libclang-rt-14-dev (libFuzzer, sanitizers)
#   all    every group above
#
# Only missing packages are installed, and `apt-get update` runs only when something is
# missing; with everything present it prints nothing. Runs as root, or through sudo.
# Installing nginx/redis-server must not leave Debian's own services on :80/:6379, so
# service start-up is suppressed during the install (policy-rc.d) and anything the
# install started anyway is stopped again.
set -euo pipefail

prog=scripts/deps.sh
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }

pkgs_build=(gcc make nginx-dev libhiredis-dev libssl-dev libpq-dev pkg-config)
pkgs_run=(nginx redis-server redis-tools postgresql openssl curl ca-certificates)
pkgs_test=("${pkgs_run[@]}" perl libjson-perl libio-socket-ssl-perl valgrind)
pkgs_bench=("${pkgs_run[@]}" wrk libnginx-mod-http-lua lua-nginx-redis)
pkgs_fuzz=(clang libclang-rt-14-dev)

groups=("$@")
[[ ${#groups[@]} -gt 0 ]] || groups=(build test run bench)

want=()
for g in "${groups[@]}"; do
    case $g in
    build) want+=("${pkgs_build[@]}") ;;
    test) want+=("${pkgs_test[@]}") ;;
    run) want+=("${pkgs_run[@]}") ;;
    bench) want+=("${pkgs_bench[@]}") ;;
    fuzz) want+=("${pkgs_fuzz[@]}") ;;
    all) want+=("${pkgs_build[@]}" "${pkgs_test[@]}" "${pkgs_bench[@]}" "${pkgs_fuzz[@]}") ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown group '$g' (build|test|run|bench|fuzz|all)" ;;
    esac
done

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    die "this script needs Debian's dpkg/apt-get (Debian 12)"
fi

installed() {
    [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) == "ii"* ]]
}

missing=()
declare -A seen=()
for p in "${want[@]}"; do
    [[ -z ${seen[$p]:-} ]] || continue
    seen[$p]=1
    installed "$p" || missing+=("$p")
done
[[ ${#missing[@]} -gt 0 ]] || exit 0

if [[ $(id -u) -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    die "missing packages (${missing[*]}) and not root, and sudo is not available"
fi

printf '%s: installing: %s\n' "$prog" "${missing[*]}"

# Keep Debian's maintainer scripts from starting nginx/redis (invoke-rc.d honours policy-rc.d).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from juki-gateway scripts/deps.sh\nexit 101\n' |
        "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    own_policy=1
fi
cleanup() {
    if [[ $own_policy -eq 1 ]]; then
        "${sudo[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
log=$(mktemp "${TMPDIR:-/tmp}/juki-deps.XXXXXX")
if ! "${sudo[@]}" apt-get "${apt_opts[@]}" update >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get update failed"
fi
if ! "${sudo[@]}" apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    die "apt-get install failed: ${missing[*]}"
fi
rm -f "$log"

# If a service got started anyway (no policy-rc.d effect), stop what this install started.
stop_service() { # NAME PIDFILE
    local name=$1 pidfile=$2 pid
    if command -v service >/dev/null 2>&1; then
        "${sudo[@]}" service "$name" stop >/dev/null 2>&1 || true
    elif command -v invoke-rc.d >/dev/null 2>&1; then
        "${sudo[@]}" invoke-rc.d "$name" stop >/dev/null 2>&1 || true
    fi
    if [[ -r $pidfile ]]; then
        pid=$(<"$pidfile")
        if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            "${sudo[@]}" kill -TERM "$pid" 2>/dev/null || true
            printf '%s: stopped the %s service the package started (pid %s)\n' "$prog" "$name" "$pid"
        fi
    fi
}
for p in "${missing[@]}"; do
    case $p in
    nginx) stop_service nginx /run/nginx.pid ;;
    redis-server) stop_service redis-server /run/redis/redis-server.pid ;;
    postgresql) stop_service postgresql /run/postgresql/15-main.pid ;;
    esac
done

printf '%s: done\n' "$prog"
