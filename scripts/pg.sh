#!/usr/bin/env bash
# scripts/pg.sh start|stop|status DIR PORT
#
# A throwaway PostgreSQL cluster for juki-gateway tests and demos (jukictl
# archive), never the system one.  Debian's binaries (PG_BIN, default the
# newest /usr/lib/postgresql/*/bin).  The cluster lives in DIR/data, listens
# on 127.0.0.1:PORT only, keeps its unix socket in DIR, and trusts local
# connections (trust auth for local and loopback; nothing else is allowed).
#
#   start   initdb on first use, then start unless it runs; wait until it
#           accepts connections; prints the DSN to use
#   stop    pg_ctl stop -m fast (then immediate)
#   status  exit 0 when it runs
#
# PostgreSQL refuses to run as root.  Run as root, the cluster runs as the
# user PG_USER (default postgres, made by Debian's postgresql package): DIR
# is made owned by it, and every directory above DIR must be searchable by
# it (a mktemp -d directory is 0700: chmod it 0711).  The database
# superuser is "postgres" either way; clients connect with
#   host=DIR port=PORT user=postgres dbname=postgres
set -euo pipefail

prog=scripts/pg.sh
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
usage() { printf 'usage: %s start|stop|status DIR PORT\n' "$prog" >&2; exit 2; }

[[ $# -eq 3 ]] || usage
action=$1 dir=$2 port=$3
if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "bad port: $port"
fi
case $action in start | stop | status) ;; *) usage ;; esac

bin=${PG_BIN:-}
if [[ -z $bin ]]; then
    for b in /usr/lib/postgresql/*/bin; do
        [[ -x $b/initdb ]] && bin=$b
    done
fi
[[ -n $bin && -x $bin/initdb && -x $bin/pg_ctl ]] ||
    die "PostgreSQL binaries not found (scripts/deps.sh test installs them)"

mkdir -p -- "$dir"
dir=$(cd -- "$dir" && pwd -P)
data=$dir/data

as_pg=()
if [[ $(id -u) -eq 0 ]]; then
    pguser=${PG_USER:-postgres}
    id -u "$pguser" >/dev/null 2>&1 ||
        die "no user $pguser to run PostgreSQL as"
    chown "$pguser" "$dir"
    as_pg=(runuser -u "$pguser" --)
    "${as_pg[@]}" test -w "$dir" ||
        die "$dir: not reachable by $pguser (chmod 0711 the directories above)"
fi

ctl() { "${as_pg[@]}" "$bin/pg_ctl" -D "$data" "$@"; }

case $action in
start)
    if [[ ! -f $data/PG_VERSION ]]; then
        "${as_pg[@]}" "$bin/initdb" -D "$data" -U postgres -A trust \
            -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
            { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed"; }
        {
            printf 'listen_addresses = %s\n' "'127.0.0.1'"
            printf 'port = %s\n' "$port"
            printf 'unix_socket_directories = %s\n' "'$dir'"
            printf 'fsync = on\n'
            printf 'logging_collector = off\n'
        } | "${as_pg[@]}" tee -a "$data/postgresql.conf" >/dev/null
        printf '%s\n' 'local all all trust' 'host all all 127.0.0.1/32 trust' |
            "${as_pg[@]}" tee "$data/pg_hba.conf" >/dev/null
    fi
    if ! ctl status >/dev/null 2>&1; then
        ctl -l "$dir/postgres.log" -w -t 30 start >/dev/null ||
            { tail -n 20 "$dir/postgres.log" >&2; die "start failed"; }
    fi
    printf 'host=%s port=%s user=postgres dbname=postgres\n' "$dir" "$port"
    ;;
stop)
    if [[ -f $data/postmaster.pid ]]; then
        ctl -m fast -w -t 20 stop >/dev/null 2>&1 ||
            ctl -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    fi
    ;;
status)
    ctl status >/dev/null 2>&1
    ;;
esac
