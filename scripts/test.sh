#!/usr/bin/env bash
# Runs the t/ suite: a private Redis (AOF, appendfsync always), a fresh test
# PKI and audit key, then prove.  Uses the genuine Test::Nginx::Socket when
# it is installed, the bundled harness in t/lib otherwise.
#   TEST_FILES="t/010-policy.t"  run a subset
#   KEEP=1                       keep the work directory
# t/110-archive.t (jukictl archive) runs its own Redis and PostgreSQL on
# TEST_ARCHIVE_REDIS_PORT / TEST_ARCHIVE_PG_PORT (default port+20, port+21);
# t/111-archive-read.t on TEST_ARCHREAD_REDIS_PORT / TEST_ARCHREAD_PG_PORT
# (port+22, port+23).
# Every test Redis runs with the ACL of conf/juki-users.acl.in (default user off)
# and per-run random passwords in WORK/secrets: the harness and jukictl talk to
# Redis as juki-admin, the gateway as juki-gw (t/juki/JukiTest.pm); the function
# library is loaded by scripts/redis.sh start.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

work=$(mktemp -d /tmp/juki-test.XXXXXX)
port=${TEST_NGINX_REDIS_PORT:-16379}

cleanup() {
    scripts/redis.sh stop "$work/redis" "$port" >/dev/null 2>&1 || true
    # the second Redis of the fault tests (t/juki/JukiTest.pm)
    scripts/redis.sh stop "$work/redis-2" "$((port + 2))" >/dev/null 2>&1 \
        || true
    # the third, on a unix socket with a password (t/025-redis-options.t)
    if [ -S "$work/redis-3/redis.sock" ]; then
        redis-cli -s "$work/redis-3/redis.sock" -a ops-secret \
            --no-auth-warning shutdown nosave >/dev/null 2>&1 || true
    fi
    # the TLS ones (t/027-redis-tls.t), by the pid each wrote
    for pidfile in "$work"/redis-tls-*/redis.pid; do
        if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" >/dev/null 2>&1 || true
        fi
    done
    if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

t/pki.sh "$work/pki" >/dev/null
head -c 64 /dev/urandom > "$work/audit.key"
chmod 600 "$work/audit.key"
export REDIS_ACL="$root/conf/juki-users.acl.in"
export REDIS_SECRETS="$work/secrets"
export JUKICTL="$root/build/jukictl"
scripts/redis.sh start "$work/redis" "$port" >/dev/null

export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
export TEST_NGINX_LOAD_MODULES="$root/build/ngx_http_juki_module.so"
export TEST_NGINX_PKI="$work/pki"
export TEST_NGINX_REDIS_PORT="$port"
export TEST_NGINX_REDIS_DIR="$work/redis"
export TEST_NGINX_AUDIT_KEY="$work/audit.key"
export TEST_NGINX_FAIL_ON_ALERT=1
export JUKI_AUDIT_KEY="$work/audit.key"
export JUKI_REDIS="127.0.0.1:$port"
export TEST_NGINX_REDIS_SECRETS="$work/secrets"
# t/110-archive.t starts its own Redis (the ACL) and PostgreSQL
# (scripts/pg.sh, Debian's postgresql from scripts/deps.sh test)
export TEST_ARCHIVE_REDIS_PORT=${TEST_ARCHIVE_REDIS_PORT:-$((port + 20))}
export TEST_ARCHIVE_PG_PORT=${TEST_ARCHIVE_PG_PORT:-$((port + 21))}
# t/111-archive-read.t (disclose --postgres) likewise, port+22, port+23
export TEST_ARCHREAD_REDIS_PORT=${TEST_ARCHREAD_REDIS_PORT:-$((port + 22))}
export TEST_ARCHREAD_PG_PORT=${TEST_ARCHREAD_PG_PORT:-$((port + 23))}
export JUKI_REDIS_USER=juki-admin
JUKI_REDIS_PASSWORD=$(cat "$work/secrets/juki-admin")
export JUKI_REDIS_PASSWORD

inc=()
if perl -MTest::Nginx::Socket -e1 2>/dev/null; then
    echo "test: genuine Test::Nginx::Socket"
else
    echo "test: bundled harness (t/lib)"
    inc=(-I t/lib)
fi

# shellcheck disable=SC2086
prove "${inc[@]}" ${PROVE_FLAGS:-} -r ${TEST_FILES:-t/}
