#!/usr/bin/env bash
# scripts/redis.sh start|stop|status|load DIR PORT
#
# A private redis-server for juki-gateway tests, demos and benchmarks — never the system one.
# Listens on 127.0.0.1:PORT only, keeps its data, config, log and pidfile in DIR, and makes
# every acknowledged write durable: AOF on with appendfsync always, no RDB snapshots.
#
#   start   start it (daemonized) unless it already runs; wait until it answers PING
#   stop    SHUTDOWN NOSAVE (then SIGTERM/SIGKILL via the pidfile if needed); wait for exit
#   status  exit 0 if it runs and answers PING, 1 otherwise
#   load    load the gateway's Function library (src/ngx_http_juki_function.h) into it:
#           `jukictl function load` when $JUKICTL has that command, else FUNCTION LOAD of the
#           expanded text (library juki_ID, ID = 12 hex of SHA-256 of the template); a library
#           already loaded is success.  `start` does it too unless REDIS_FUNCTION=0.
#
# Environment: REDIS_SERVER, REDIS_CLI (binaries), REDIS_TIMEOUT (seconds, default 10).
#   REDIS_ACL      an ACL template (conf/juki-users.acl.in): Redis then runs with its users
#                  (aclfile DIR/users.acl), the default user off.  Each @PASS_<user>@ is
#                  rendered as the SHA-256 of the password in REDIS_SECRETS/<user>, a random
#                  one made at the first start (mode 0600).  Unset: no ACL (an open loopback
#                  Redis, as before).  stop/status/load then authenticate as juki-admin.
#   REDIS_SECRETS  the password files' directory (default DIR/secrets; a different one is
#                  linked as DIR/secrets so that stop/status find it).
#   JUKICTL        jukictl for `load` (default build/jukictl).
set -euo pipefail

prog=scripts/redis.sh
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
usage() { printf 'usage: %s start|stop|status|load DIR PORT\n' "$prog" >&2; exit 2; }

[[ $# -eq 3 ]] || usage
action=$1 dir=$2 port=$3
if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "bad port: $port"
fi
case $action in start | stop | status | load) ;; *) usage ;; esac
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

server=${REDIS_SERVER:-redis-server}
cli=${REDIS_CLI:-redis-cli}
timeout=${REDIS_TIMEOUT:-10}
[[ $timeout =~ ^[0-9]+$ ]] || die "bad REDIS_TIMEOUT: $timeout"
command -v "$cli" >/dev/null 2>&1 || die "$cli not found (run scripts/deps.sh)"

pidfile=$dir/redis.pid
logfile=$dir/redis.log

# redis-cli, as juki-admin when this Redis has an ACL (the password in the environment,
# never on the command line)
rcli() {
    local pw=$dir/secrets/juki-admin
    if [[ -f $pw ]]; then
        REDISCLI_AUTH=$(<"$pw") "$cli" --user juki-admin -h 127.0.0.1 -p "$port" "$@"
    else
        "$cli" -h 127.0.0.1 -p "$port" "$@"
    fi
}

ping() { [[ $(rcli ping 2>/dev/null) == PONG ]]; }

# shellcheck source=scripts/proc.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/proc.sh"

# The pid from our pidfile, if that process is alive (and, where /proc tells, a redis-server).
ourpid() {
    local pid comm
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile") || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    if [[ -r /proc/$pid/comm ]]; then
        comm=$(</proc/"$pid"/comm) 2>/dev/null || return 1
        [[ $comm == redis-server* ]] || return 1
    fi
    printf '%s\n' "$pid"
}

# wait_gone PID SECONDS: 0 once PID has exited, 1 on timeout.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

# the ACL: DIR/users.acl from the template $REDIS_ACL, passwords made where missing
acl_render() {
    local tmpl=$1 secrets=${REDIS_SECRETS:-$dir/secrets} u pw hash args=()
    [[ -f $tmpl ]] || die "no ACL template $tmpl"
    (umask 077 && mkdir -p -- "$secrets") || die "cannot create $secrets"
    secrets=$(cd -- "$secrets" && pwd -P)
    if [[ $secrets != "$dir/secrets" ]]; then
        rm -f -- "$dir/secrets"
        ln -s -- "$secrets" "$dir/secrets" || die "cannot link $dir/secrets"
    fi
    for u in $(grep -o '@PASS_[A-Za-z0-9_-]*@' "$tmpl" | sort -u); do
        u=${u#@PASS_} u=${u%@}
        if [[ ! -s $secrets/$u ]]; then
            pw=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n') || die "no random password"
            [[ ${#pw} -eq 48 ]] || die "no random password"
            (umask 077 && printf '%s' "$pw" >"$secrets/$u.tmp" && mv -f -- "$secrets/$u.tmp" "$secrets/$u") ||
                die "cannot write $secrets/$u"
        fi
        hash=$(sha256sum <"$secrets/$u") || die "sha256sum failed"
        args+=(-e "s|@PASS_${u}@|${hash%% *}|g")
    done
    # an aclfile has no comments and no blank lines
    (umask 077 && sed "${args[@]}" -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$tmpl" >"$dir/users.acl") ||
        die "cannot render $dir/users.acl"
    if grep -q '@[A-Za-z_-]*@' "$dir/users.acl"; then
        die "unreplaced placeholder in $dir/users.acl (from $tmpl)"
    fi
}

do_start() {
    command -v "$server" >/dev/null 2>&1 || die "$server not found (run scripts/deps.sh)"
    mkdir -p -- "$dir" || die "cannot create $dir"
    dir=$(cd -- "$dir" && pwd -P)
    pidfile=$dir/redis.pid
    logfile=$dir/redis.log

    local pid i
    if pid=$(ourpid); then
        ping || die "redis (pid $pid, $dir) is running but does not answer on 127.0.0.1:$port"
        printf '%s: already running (pid %s) on 127.0.0.1:%s, data in %s\n' "$prog" "$pid" "$port" "$dir"
        return 0
    fi
    rm -f -- "$pidfile"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port already has a Redis that is not ours ($dir); choose another port"
    fi
    local acl_line='# no ACL (REDIS_ACL unset): the default user, no password'
    if [[ -n ${REDIS_ACL:-} ]]; then
        acl_render "$REDIS_ACL"
        acl_line="aclfile $dir/users.acl"
    else
        rm -f -- "$dir/users.acl" "$dir/secrets"
    fi

    cat >"$dir/redis.conf" <<CONF
# Generated by scripts/redis.sh — private Redis for juki-gateway (loopback only).
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
pidfile $pidfile
logfile $logfile
dir $dir
# Durability: an acknowledged audit record must survive kill -9 of Redis.
appendonly yes
appendfsync always
appendfilename "appendonly.aof"
appenddirname "appendonlydir"
save ""
# Users and roles (conf/juki-users.acl.in, docs/operations.md "Redis ACL").
$acl_line
CONF
    if ! "$server" "$dir/redis.conf" >>"$logfile" 2>&1; then
        tail -n 20 "$logfile" >&2 || true
        die "redis-server failed to start (config $dir/redis.conf, log $logfile)"
    fi
    for ((i = 0; i < timeout * 10; i++)); do
        if ping; then
            pid=$(ourpid) || die "something answers on port $port but our redis (pidfile $pidfile) is not running; see $logfile"
            if [[ ${REDIS_FUNCTION:-1} != 0 ]]; then
                do_load >/dev/null
            fi
            printf '%s: started (pid %s) on 127.0.0.1:%s, data in %s\n' "$prog" "$pid" "$port" "$dir"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2 || true
    die "redis on 127.0.0.1:$port did not answer PING within ${timeout}s (log $logfile)"
}

do_stop() {
    local pid
    if ! pid=$(ourpid); then
        rm -f -- "$pidfile"
        printf '%s: not running (%s)\n' "$prog" "$dir"
        return 0
    fi
    rcli shutdown nosave >/dev/null 2>&1 || true
    if ! wait_gone "$pid" "$timeout"; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 5; then
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || die "redis (pid $pid) does not exit"
        fi
    fi
    rm -f -- "$pidfile"
    printf '%s: stopped (pid %s)\n' "$prog" "$pid"
}

do_status() {
    local pid
    if pid=$(ourpid) && ping; then
        printf '%s: running (pid %s) on 127.0.0.1:%s, data in %s\n' "$prog" "$pid" "$port" "$dir"
        return 0
    fi
    printf '%s: not running (%s, port %s)\n' "$prog" "$dir" "$port"
    return 1
}

# the library's text: the C string literals of NGX_HTTP_JUKI_FUNCTION_LIBRARY, unescaped,
# every @V@ replaced by the id
function_text() {
    perl -MDigest::SHA=sha256_hex -e '
        my $h = shift;
        open(my $fh, "<", $h) or die "$h: $!\n";
        local $/;
        my $src = <$fh>;
        $src =~ /#define\s+NGX_HTTP_JUKI_FUNCTION_LIBRARY\s*\\\n(.*?)\n\n/s
            or die "no NGX_HTTP_JUKI_FUNCTION_LIBRARY in $h\n";
        my $def = $1;
        $def =~ s{/\*.*?\*/}{}gs;
        my $t = "";
        while ($def =~ /"((?:[^"\\]|\\.)*)"/g) {
            (my $l = $1) =~ s/\\(.)/$1 eq "n" ? "\n" : $1/ge;
            $t .= $l;
        }
        my $id = substr(sha256_hex($t), 0, 12);
        $t =~ s/\@V\@/$id/g;
        print $t;
    ' "$root/src/ngx_http_juki_function.h"
}

do_load() {
    local jukictl=${JUKICTL:-$root/build/jukictl} out rc=0 pw
    dir=$(cd -- "$dir" 2>/dev/null && pwd -P) || die "no directory $dir"
    pw=$dir/secrets/juki-admin
    ping || die "no Redis answers on 127.0.0.1:$port ($dir)"
    if [[ -x $jukictl ]] && "$jukictl" --help 2>/dev/null | grep -q '^ *jukictl function'; then
        local auth=()
        [[ -f $pw ]] && auth=(--user juki-admin --password-file "$pw")
        out=$("$jukictl" --redis "127.0.0.1:$port" "${auth[@]}" function load 2>&1) || rc=$?
        ((rc == 0)) || die "jukictl function load failed: $out"
        printf '%s\n' "$out"
        return 0
    fi
    local text
    text=$(function_text) || die "cannot expand src/ngx_http_juki_function.h"
    out=$(printf '%s\n' "$text" | rcli -x FUNCTION LOAD 2>&1) || rc=$?
    if ((rc == 0)) && [[ $out =~ ^juki_[0-9a-f]{12}$ ]]; then
        printf 'function library %s loaded\n' "$out"
    elif [[ $out == *"already exists"* ]]; then
        printf 'function library already loaded\n'
    else
        die "FUNCTION LOAD failed: $(head -c 200 <<<"$out" | tr -cd '[:print:]')"
    fi
}

"do_$action"
