#!/usr/bin/env bash
# scripts/topology.sh start|stop|status sentinel|cluster DIR BASEPORT
#
# The replicated Redis set-ups of juki-gateway on loopback, for tests, demos
# and benchmarks — never the system Redis.  Every node keeps audit records as
# the single Redis does (AOF, appendfsync always, no RDB) and refuses to evict
# (noeviction): a record Redis acknowledged is never dropped to make room.
#
#   sentinel  a master on BASEPORT, replicas on BASEPORT+1 and +2, and three
#             Sentinels on BASEPORT+3..+5 watching it as "juki" (quorum 2,
#             down after 1000 ms).  The master refuses writes unless one
#             replica is connected and at most 10 s behind
#             (min-replicas-to-write 1), so a master cut off from its
#             replicas stops acknowledging records.
#   cluster   six nodes on BASEPORT..+5 (cluster bus on port+10000) joined
#             as 3 masters with one replica each; started when
#             `CLUSTER INFO` says cluster_state:ok on every node.  Keep
#             BASEPORT+10005 below 32768, out of the kernel's ephemeral
#             range, or a bus port may already be taken by a connection.
#
#   start     start every process (and join the cluster) unless it runs
#   stop      stop every process of the set-up (SHUTDOWN NOSAVE, then the pid)
#   status    exit 0 when every process answers PING, 1 otherwise
#
# Environment:
#   REDIS_TLS_DIR   a directory with ca.pem, redis.pem and redis.key, and a
#                   client certificate redis-client.pem/.key that nodes
#                   present to each other (a server certificate is refused
#                   as a client's); t/pki.sh writes them.  Every node and
#                   Sentinel then
#                   listens with TLS only (port 0, tls-port), replication and
#                   the cluster bus use TLS, clients may present a certificate
#                   (tls-auth-clients optional)
#   REDIS_SERVER, REDIS_CLI   the binaries; REDIS_TIMEOUT (s, default 20)
# Redis runs Sentinel as `redis-server CONF --sentinel`: Debian's
# redis-sentinel package is only that, plus a system service we do not want.
set -euo pipefail

prog=scripts/topology.sh
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
usage() {
    printf 'usage: %s start|stop|status sentinel|cluster DIR BASEPORT\n' \
        "$prog" >&2
    exit 2
}

[[ $# -eq 4 ]] || usage
action=$1 kind=$2 dir=$3 base=$4
case $action in start | stop | status) ;; *) usage ;; esac
case $kind in sentinel | cluster) ;; *) usage ;; esac
if ! [[ $base =~ ^[0-9]+$ ]] || ((base < 1024 || base > 55000)); then
    die "bad base port: $base (1024-55000: the cluster bus is port+10000)"
fi

server=${REDIS_SERVER:-redis-server}
cli=${REDIS_CLI:-redis-cli}
timeout=${REDIS_TIMEOUT:-20}
[[ $timeout =~ ^[0-9]+$ ]] || die "bad REDIS_TIMEOUT: $timeout"
command -v "$server" >/dev/null 2>&1 || die "$server not found"
command -v "$cli" >/dev/null 2>&1 || die "$cli not found"

tls=${REDIS_TLS_DIR:-}
if [[ -n $tls ]]; then
    for f in ca.pem redis.pem redis.key redis-client.pem redis-client.key; do
        [[ -r $tls/$f ]] || die "REDIS_TLS_DIR: $tls/$f not readable"
    done
    tls=$(cd -- "$tls" && pwd -P)
fi

# node names and ports of the set-up
if [[ $kind == sentinel ]]; then
    nodes=(master replica1 replica2 sentinel1 sentinel2 sentinel3)
else
    nodes=(node1 node2 node3 node4 node5 node6)
fi
port_of() { # INDEX
    printf '%d' $((base + $1))
}

# rcli PORT ARGS...: redis-cli against one local port, TLS when configured
rcli() {
    local p=$1
    shift
    if [[ -n $tls ]]; then
        "$cli" --tls --cacert "$tls/ca.pem" -h 127.0.0.1 -p "$p" "$@"
    else
        "$cli" -h 127.0.0.1 -p "$p" "$@"
    fi
}

ping() { [[ $(rcli "$1" ping 2>/dev/null) == PONG ]]; }

# shellcheck source=scripts/proc.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/proc.sh"

ourpid() { # NODEDIR
    local pid
    [[ -f $1/redis.pid ]] || return 1
    pid=$(<"$1/redis.pid") || return 1
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    printf '%s\n' "$pid"
}

# the lines every process shares: loopback, files in its own directory,
# the listening port (TLS only when configured)
common_conf() { # NODEDIR PORT
    printf 'bind 127.0.0.1\nprotected-mode no\ndaemonize yes\n'
    printf 'pidfile %s/redis.pid\nlogfile %s/redis.log\ndir %s\n' "$1" "$1" "$1"
    if [[ -n $tls ]]; then
        printf 'port 0\ntls-port %s\n' "$2"
        printf 'tls-ca-cert-file %s/ca.pem\n' "$tls"
        printf 'tls-cert-file %s/redis.pem\ntls-key-file %s/redis.key\n' \
            "$tls" "$tls"
        printf 'tls-client-cert-file %s/redis-client.pem\n' "$tls"
        printf 'tls-client-key-file %s/redis-client.key\n' "$tls"
        printf 'tls-auth-clients optional\ntls-replication yes\n'
    else
        printf 'port %s\n' "$2"
    fi
}

# what a data node keeps: the single Redis's durability, and no eviction
data_conf() {
    printf 'appendonly yes\nappendfsync always\nsave ""\n'
    printf 'maxmemory-policy noeviction\n'
}

write_conf() { # INDEX NODEDIR
    local i=$1 d=$2 p
    p=$(port_of "$i")
    {
        printf '# generated by %s (%s set-up, loopback only)\n' "$prog" "$kind"
        common_conf "$d" "$p"
        if [[ $kind == cluster ]]; then
            data_conf
            printf 'cluster-enabled yes\ncluster-config-file %s/nodes.conf\n' "$d"
            printf 'cluster-node-timeout 2000\n'
            [[ -z $tls ]] || printf 'tls-cluster yes\n'
        elif ((i == 0)); then
            data_conf
            printf 'min-replicas-to-write 1\nmin-replicas-max-lag 10\n'
        elif ((i <= 2)); then
            data_conf
            printf 'replicaof 127.0.0.1 %s\n' "$(port_of 0)"
            # a replica promoted later must refuse writes without one of
            # its own, as the master does
            printf 'min-replicas-to-write 1\nmin-replicas-max-lag 10\n'
        else
            printf 'sentinel monitor juki 127.0.0.1 %s 2\n' "$(port_of 0)"
            printf 'sentinel down-after-milliseconds juki 1000\n'
            printf 'sentinel failover-timeout juki 5000\n'
            printf 'sentinel parallel-syncs juki 1\n'
        fi
    } >"$d/redis.conf"
}

start_node() { # INDEX
    local i=$1 d p pid
    d=$dir/${nodes[$i]}
    p=$(port_of "$i")
    mkdir -p -- "$d"
    if pid=$(ourpid "$d"); then
        return 0
    fi
    ping "$p" && die "port $p already has a Redis that is not ours"
    rm -f -- "$d/redis.pid"
    # a Sentinel rewrites its file: write it only the first time, so that
    # a restarted Sentinel keeps what it learnt
    if [[ ! -f $d/redis.conf ]] || [[ $kind == cluster ]] || ((i <= 2)); then
        write_conf "$i" "$d"
    fi
    if [[ $kind == sentinel ]] && ((i >= 3)); then
        "$server" "$d/redis.conf" --sentinel >>"$d/redis.log" 2>&1
    else
        "$server" "$d/redis.conf" >>"$d/redis.log" 2>&1
    fi || {
        tail -n 20 "$d/redis.log" >&2 || true
        die "${nodes[$i]} failed to start (log $d/redis.log)"
    }
}

wait_for() { # WHAT COMMAND...: poll COMMAND until it succeeds or time is up
    local what=$1 i
    shift
    for ((i = 0; i < timeout * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    die "$what not reached within ${timeout}s (logs in $dir/*/redis.log)"
}

all_ping() {
    local i
    for i in "${!nodes[@]}"; do
        ping "$(port_of "$i")" || return 1
    done
}

cluster_ok() {
    local i
    for i in "${!nodes[@]}"; do
        rcli "$(port_of "$i")" cluster info 2>/dev/null \
            | grep -q '^cluster_state:ok' || return 1
    done
    # and every master's replica has joined its shard
    [[ $(rcli "$(port_of 0)" cluster shards 2>/dev/null \
        | grep -cx replica) -eq 3 ]]
}

# every Sentinel knows the master and both replicas, and the master it
# names (after a failover, not the first one) counts both as good replicas:
# a fresh replica counts once it has acknowledged
sentinels_ready() {
    local i m
    m=$(rcli "$(port_of 3)" sentinel get-master-addr-by-name juki \
        2>/dev/null | sed -n 2p)
    [[ $m =~ ^[0-9]+$ ]] || return 1
    rcli "$m" info replication 2>/dev/null \
        | grep -q '^min_slaves_good_slaves:2' || return 1
    for i in 3 4 5; do
        [[ $(rcli "$(port_of "$i")" sentinel replicas juki 2>/dev/null \
            | grep -c '^name$') -ge 2 ]] || return 1
    done
}

# create_cluster: join the six nodes; a create that fails (a node still
# settling on a loaded machine) is undone with CLUSTER RESET HARD on every
# node and tried again, twice at most
create_cluster() {
    local i try addrs=() tlsargs=()
    for i in "${!nodes[@]}"; do
        addrs+=("127.0.0.1:$(port_of "$i")")
    done
    [[ -z $tls ]] || tlsargs=(--tls --cacert "$tls/ca.pem")
    for try in 1 2 3; do
        if "$cli" "${tlsargs[@]}" --cluster create "${addrs[@]}" \
                --cluster-replicas 1 --cluster-yes \
                >"$dir/create.log" 2>&1; then
            return 0
        fi
        printf '%s: cluster create failed (try %s):\n' "$prog" "$try" >&2
        tail -n 5 "$dir/create.log" >&2
        for i in "${!nodes[@]}"; do
            rcli "$(port_of "$i")" cluster reset hard >/dev/null 2>&1 || true
        done
        sleep 1
    done
    die "cluster create failed (log $dir/create.log)"
}

do_start() {
    local i
    mkdir -p -- "$dir" || die "cannot create $dir"
    dir=$(cd -- "$dir" && pwd -P)
    for i in "${!nodes[@]}"; do
        start_node "$i"
    done
    wait_for "PING on every process" all_ping
    if [[ $kind == cluster ]]; then
        if ! cluster_ok; then
            if [[ $(rcli "$(port_of 0)" cluster info \
                    | grep -c '^cluster_known_nodes:1') == 1 ]]; then
                create_cluster
            fi
            wait_for "cluster_state:ok on every node" cluster_ok
        fi
    else
        wait_for "three Sentinels seeing two replicas" sentinels_ready
    fi
    printf '%s: %s set-up running on 127.0.0.1:%s-%s%s, data in %s\n' \
        "$prog" "$kind" "$base" "$((base + 5))" "${tls:+ (TLS)}" "$dir"
}

do_stop() {
    local i d p pid
    for i in "${!nodes[@]}"; do
        d=$dir/${nodes[$i]}
        p=$(port_of "$i")
        pid=$(ourpid "$d") || continue
        rcli "$p" shutdown nosave >/dev/null 2>&1 || true
        for ((n = 0; n < 50; n++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f -- "$d/redis.pid"
    done
    printf '%s: %s set-up stopped (%s)\n' "$prog" "$kind" "$dir"
}

do_status() {
    local i rc=0
    for i in "${!nodes[@]}"; do
        if ourpid "$dir/${nodes[$i]}" >/dev/null && ping "$(port_of "$i")"; then
            printf '%-10s running on 127.0.0.1:%s\n' "${nodes[$i]}" \
                "$(port_of "$i")"
        else
            printf '%-10s not running (port %s)\n' "${nodes[$i]}" \
                "$(port_of "$i")"
            rc=1
        fi
    done
    return "$rc"
}

"do_$action"
