#!/usr/bin/env bash
# scripts/run.sh — start the juki-gateway demo (what `make run` calls), then check it.
#
# Starts, all on 127.0.0.1 and all under the run dir:
#   Redis         :6390  (scripts/redis.sh; AOF, appendfsync always)   RUN/redis/
#   demo backend  :8081  (plain NGINX, invented records, conf/demo/)    RUN/backend/
#   gateway       :8443  (NGINX + ngx_http_juki_module, mutual TLS)     RUN/gateway/
#   PostgreSQL    :6391  (scripts/pg.sh; the archive)                   RUN/pg/
#   archiver      jukictl archive --follow as juki-archiver, when jukictl is built
#                 (pid RUN/archiver.pid, log RUN/logs/archiver.log; signing key
#                 RUN/archive.key, Ed25519 PKCS#8, its public key RUN/archive.pub)
# with a demo PKI (t/pki.sh → RUN/pki/) and an audit key (RUN/audit.key, mode 0600), Redis
# under the ACL of conf/juki-users.acl.in (passwords in RUN/redis/secrets/, the gateway
# as juki-gw) with the gateway's function library loaded, then
# prints ready-to-paste curl commands, runs each and reports ✓/✗ against its expected result.
# Exit 0 when every check passed, 1 otherwise (services are left running to look at).
#
# Environment:
#   JUKI_MODULE        the built module   (default: ./build/ngx_http_juki_module.so)
#   JUKICTL            jukictl, if built  (default: ./build/jukictl)
#   JUKI_RUN_DIR       run dir            (default: ./run)
#   NGINX              nginx binary       (default: nginx in PATH, else /usr/sbin/nginx)
#   JUKI_GATEWAY_PORT  (8443)   JUKI_BACKEND_PORT (8081)   JUKI_REDIS_PORT (6390)
#   JUKI_PG_PORT       (6391)
#   JUKI_NODE          juki_node of the demo gateway (gw-demo-1)
#   JUKI_NEW_PKI=1     regenerate the demo PKI even if RUN/pki exists
# "./" is the repository root (the directory above scripts/). Stop with scripts/stop.sh.
set -euo pipefail

prog=scripts/run.sh
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

abspath() { # PATH -> absolute (relative paths are taken from the repository root)
    case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$root" "$1" ;;
    esac
}

module=$(abspath "${JUKI_MODULE:-build/ngx_http_juki_module.so}")
jukictl=$(abspath "${JUKICTL:-build/jukictl}")
run_dir=$(abspath "${JUKI_RUN_DIR:-run}")
gw_port=${JUKI_GATEWAY_PORT:-8443}
be_port=${JUKI_BACKEND_PORT:-8081}
redis_port=${JUKI_REDIS_PORT:-6390}
pg_port=${JUKI_PG_PORT:-6391}
node=${JUKI_NODE:-gw-demo-1}
nginx=${NGINX:-$(command -v nginx 2>/dev/null || printf '/usr/sbin/nginx')}

for p in "$gw_port" "$be_port" "$redis_port" "$pg_port"; do
    if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
        die "bad port number: $p"
    fi
done
[[ $node =~ ^[A-Za-z0-9._-]+$ ]] || die "bad JUKI_NODE: $node"

# --- prerequisites -------------------------------------------------------------------------
if [[ ! -f $module ]]; then
    die "the juki module is not built: $module does not exist.
    Build it first (make), or point JUKI_MODULE at it."
fi
[[ -x $nginx ]] || die "nginx not found ($nginx); run scripts/deps.sh run"
for tool in openssl curl redis-server redis-cli sed awk; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run scripts/deps.sh run"
done

# A previous demo still running? Stop it first, so `make run` can be repeated.
if [[ -f $run_dir/gateway/nginx.pid || -f $run_dir/backend/nginx.pid || -f $run_dir/redis/redis.pid ||
    -f $run_dir/archiver.pid || -f $run_dir/pg/data/postmaster.pid ]]; then
    JUKI_RUN_DIR=$run_dir JUKI_REDIS_PORT=$redis_port JUKI_PG_PORT=$pg_port \
        "$root/scripts/stop.sh" >/dev/null
fi

mkdir -p -- "$run_dir"/{logs,redis,pki,gateway/temp,backend/temp}
chmod 0755 -- "$run_dir"
pki=$run_dir/pki

# --- PKI and audit key -----------------------------------------------------------------------
if [[ ${JUKI_NEW_PKI:-0} == 1 || ! -s $pki/fingerprints.txt || ! -s $pki/crl.pem ]]; then
    "$root/t/pki.sh" "$pki" >/dev/null || die "t/pki.sh failed"
fi

# The key is kept across runs: records already in Redis are chained and keyed with it.
key=$run_dir/audit.key
if [[ ! -s $key ]] || (($(wc -c <"$key") < 32)); then
    (umask 077 && openssl rand -out "$key" 64) || die "cannot create $key"
fi
chmod 0600 -- "$key"

# --- configuration -------------------------------------------------------------------------
# shellcheck disable=SC2001 # sed is clearer than ${//} here ("&" is special in bash 5.2)
sed_escape() { sed -e 's/[\\|&]/\\&/g' <<<"$1"; }

render() { # TEMPLATE OUTPUT
    sed -e "s|@JUKI_MODULE@|$(sed_escape "$module")|g" \
        -e "s|@RUN_DIR@|$(sed_escape "$run_dir")|g" \
        -e "s|@PKI_DIR@|$(sed_escape "$pki")|g" \
        -e "s|@GATEWAY_PORT@|$gw_port|g" \
        -e "s|@BACKEND_PORT@|$be_port|g" \
        -e "s|@REDIS_PORT@|$redis_port|g" \
        -e "s|@JUKI_NODE@|$node|g" \
        -e "s|@USER_LINE@|$(sed_escape "$user_line")|g" \
        "$1" >"$2"
    if grep -n '@[A-Z_]*@' "$2" >&2; then
        die "unreplaced placeholder in $2 (from $1)"
    fi
}

# NGINX started as root runs its workers as "nobody"; the demo backend's workers must read
# its data files, so fall back to root workers only where nobody cannot reach the run dir.
user_line="# user: NGINX's default"
if [[ $(id -u) -eq 0 ]] && command -v runuser >/dev/null 2>&1 &&
    ! runuser -u nobody -- test -x "$run_dir/backend" 2>/dev/null; then
    user_line="user root;  # the run dir is not reachable by nobody"
fi

# Redis first: its ACL's passwords (made at the first start, kept in RUN/redis/secrets/)
# go into the gateway's configuration.
REDIS_ACL=$root/conf/juki-users.acl.in JUKICTL=$jukictl \
    "$root/scripts/redis.sh" start "$run_dir/redis" "$redis_port" >/dev/null ||
    die "Redis did not start (log: $run_dir/redis/redis.log)"
secrets=$run_dir/redis/secrets
[[ -s $secrets/juki-gw ]] || die "no password of juki-gw in $secrets"
gw_password=$(<"$secrets/juki-gw")
[[ $gw_password =~ ^[0-9a-f]+$ ]] || die "bad password file $secrets/juki-gw"

render "$root/conf/backend.conf.in" "$run_dir/backend/nginx.conf"
(umask 077 && render "$root/conf/gateway.conf.in" "$run_dir/gateway/nginx.conf")
# the gateway's Redis credential (the role juki-gw): the file holding it is mode 0600
sed -i -e "s|^\([[:space:]]*juki_redis[[:space:]].*\) timeout=50ms;|\1 timeout=50ms user=juki-gw password=$gw_password;|" \
    "$run_dir/gateway/nginx.conf"
grep -q 'user=juki-gw password=' "$run_dir/gateway/nginx.conf" ||
    die "no juki_redis line to give the gateway its credential in $run_dir/gateway/nginx.conf"

rm -rf -- "$run_dir/backend/data"
mkdir -p -- "$run_dir/backend/data"
cp -R -- "$root/conf/demo/residents" "$root/conf/demo/history" "$run_dir/backend/data/"
chmod -R a+rX -- "$run_dir/backend/data"

# The committed policy, with each agency also pinned to the fingerprint of its demo
# certificate: "certificate_sha256 FP;" goes right after the matching subject line.
awk -v fpfile="$pki/fingerprints.txt" '
    BEGIN {
        while ((getline line < fpfile) > 0) {
            n = split(line, f, " ")
            if (n < 3) continue
            subj = substr(line, length(f[1]) + length(f[2]) + 3)
            fp[subj] = f[2]
        }
        close(fpfile)
    }
    { print }
    /^[[:space:]]*subject[[:space:]]+"/ {
        s = $0
        sub(/^[[:space:]]*subject[[:space:]]+"/, "", s)
        sub(/";.*$/, "", s)
        if (s in fp) {
            indent = $0
            sub(/[^[:space:]].*$/, "", indent)
            printf "%scertificate_sha256 %s;  # pinned to %s by scripts/run.sh\n", indent, fp[s], fpfile
            pinned++
        }
    }
    END { if (pinned < 3) exit 3 }
' "$root/conf/juki-policy.conf" >"$run_dir/gateway/juki-policy.conf" ||
    die "could not pin the demo agencies in $run_dir/gateway/juki-policy.conf (fingerprints in $pki/fingerprints.txt)"

# --- start -----------------------------------------------------------------------------------
started=()
cleanup_on_failure() {
    printf '%s: stopping what was started\n' "$prog" >&2
    JUKI_RUN_DIR=$run_dir JUKI_REDIS_PORT=$redis_port JUKI_PG_PORT=$pg_port \
        "$root/scripts/stop.sh" >/dev/null 2>&1 || true
}

start_nginx() { # NAME
    local name=$1 out
    local conf=$run_dir/$name/nginx.conf err=$run_dir/logs/$name-error.log
    if ! out=$("$nginx" -q -t -p "$run_dir/$name/" -c "$conf" -e "$err" 2>&1); then
        printf '%s\n' "$out" >&2
        cleanup_on_failure
        die "nginx -t failed for the $name ($conf); see above"
    fi
    if ! out=$("$nginx" -p "$run_dir/$name/" -c "$conf" -e "$err" 2>&1); then
        printf '%s\n' "$out" >&2
        tail -n 5 "$err" >&2 2>/dev/null || true
        cleanup_on_failure
        die "the $name NGINX did not start; log: $err"
    fi
    started+=("$name")
}

wait_port() { # NAME PORT
    local i
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    cleanup_on_failure
    die "the $1 does not accept connections on 127.0.0.1:$2 (logs in $run_dir/logs/)"
}

start_nginx backend
wait_port "demo backend" "$be_port"
start_nginx gateway
wait_port gateway "$gw_port"

# --- the archive: PostgreSQL and the archiver ------------------------------------------------
# The signing key is kept across runs, as the audit key: the archive's checkpoints are signed
# with it.  PostgreSQL runs as postgres when this runs as root (scripts/pg.sh).
archiving=0
if [[ -x $jukictl ]]; then
    dsn=$("$root/scripts/pg.sh" start "$run_dir/pg" "$pg_port") || {
        cleanup_on_failure
        die "PostgreSQL did not start (log: $run_dir/pg/postgres.log)"
    }
    sign_key=$run_dir/archive.key pub_key=$run_dir/archive.pub
    if [[ ! -s $sign_key ]]; then
        (umask 077 && openssl genpkey -algorithm ED25519 -out "$sign_key" 2>/dev/null) ||
            { cleanup_on_failure; die "cannot create $sign_key"; }
    fi
    chmod 0600 -- "$sign_key"
    openssl pkey -in "$sign_key" -pubout -out "$pub_key" 2>/dev/null ||
        { cleanup_on_failure; die "cannot write $pub_key"; }
    [[ -s $secrets/juki-archiver ]] || { cleanup_on_failure; die "no password of juki-archiver in $secrets"; }
    JUKI_REDIS=127.0.0.1:$redis_port JUKI_AUDIT_KEY=$key JUKI_POSTGRES=$dsn \
        nohup "$jukictl" archive --follow --signing-key "$sign_key" \
        --checkpoint-file "$run_dir/archive.checkpoint" \
        --user juki-archiver --password-file "$secrets/juki-archiver" \
        </dev/null >>"$run_dir/logs/archiver.log" 2>&1 &
    printf '%s\n' "$!" >"$run_dir/archiver.pid"
    archiving=1
fi

# --- show and check ----------------------------------------------------------------------------
# Quote an argument for pasting into a shell: bare when safe, else single-quoted.
shq() {
    if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

url=https://127.0.0.1:$gw_port
passed=0 failed=0

# check TITLE EXPECT_STATUS EXPECT_BODY CERT [curl args...]
#   CERT is a client name from the demo PKI, or "-" for none; EXPECT_BODY a substring or "".
check() {
    local title=$1 want=$2 body_want=$3 cert=$4
    shift 4
    local -a cmd=(curl -sS --cacert "$pki/ca.pem")
    if [[ $cert != - ]]; then
        cmd+=(--cert "$pki/$cert.pem" --key "$pki/$cert.key")
    fi
    cmd+=("$@")

    local line='' a
    for a in "${cmd[@]}"; do
        line+="$(shq "$a") "
    done

    local out status body mark
    out=$("${cmd[@]}" -o - -w '\n%{http_code}' 2>&1) || true
    status=${out##*$'\n'}
    body=${out%$'\n'*}
    [[ $out == *$'\n'* ]] || body=$out
    if [[ $status == "$want" && ($body_want == "" || $body == *"$body_want"*) ]]; then
        mark='✓' passed=$((passed + 1))
    else
        mark='✗' failed=$((failed + 1))
    fi
    printf '\n%s %s\n' "$mark" "$title"
    printf '  $ %s\n' "${line% }"
    printf '  expected: %s%s\n' "$want" "${body_want:+, body contains $body_want}"
    printf '  got:      %s  %s\n' "$status" "$(head -c 300 <<<"$body" | tr -s '\n' ' ')"
}

cat <<INFO

juki-gateway demo is running (all on 127.0.0.1):
  gateway   $url        conf $run_dir/gateway/nginx.conf
  backend   http://127.0.0.1:$be_port      conf $run_dir/backend/nginx.conf
  redis     127.0.0.1:$redis_port              data $run_dir/redis/
  PKI       $pki/   (fingerprints.txt lists the client certificates)
  audit key $key
INFO
if ((archiving)); then
    printf '  archive   %s   (archiver pid %s, log %s)\n' "$dsn" "$(<"$run_dir/archiver.pid")" \
        "$run_dir/logs/archiver.log"
fi

printf '\n--- allowed requests ---\n'
check "pension-service looks up a resident for a pension benefit" 200 '"resident_code":"12345678901"' national \
    -H 'Juki-Purpose: pension.benefit' -H 'Juki-Operator: op-0042' "$url/v1/residents/?code=12345678901"
check "shibuya-city reads a resident's change history for health insurance" 200 '"changes"' municipality \
    -H 'Juki-Purpose: health.insurance' -H 'Juki-Operator: clerk-17' "$url/v1/residents/23456789012/history"
check "example-bank verifies a customer's identity without a resident code" 200 '"match":true' private \
    -H 'Juki-Purpose: identity.verification' -H 'Juki-Operator: teller-3' \
    "$url/v1/verify?name=SATO-HANAKO&birth=1982-11-23"
check "the backend sees the headers the gateway set (client copies removed)" 200 '"Juki-Agency":"example-bank"' private \
    -H 'Juki-Purpose: network.diagnostics' -H 'Juki-Operator: teller-3' -H 'Juki-Agency: pension-service' \
    "$url/v1/echo"

printf '\n--- denied requests ---\n'
check "purpose not granted to the agency (a national body asking for municipal tax)" 403 '"error":"purpose_not_permitted"' national \
    -H 'Juki-Purpose: tax.assessment' -H 'Juki-Operator: op-0042' "$url/v1/residents/?code=12345678901"
check "missing Juki-Operator header" 400 '"error":"bad_operator"' national \
    -H 'Juki-Purpose: pension.benefit' "$url/v1/residents/?code=12345678901"
check "a private agency sending a resident code" 403 '"error":"resident_code_forbidden"' private \
    -H 'Juki-Purpose: identity.verification' -H 'Juki-Operator: teller-3' "$url/v1/verify?code=12345678901"
check "a valid certificate that maps to no agency" 403 '"error":"unknown_agency"' unmapped \
    -H 'Juki-Purpose: pension.benefit' -H 'Juki-Operator: op-0042' "$url/v1/residents/?code=12345678901"
check "a revoked certificate (in the CRL), refused by NGINX" 400 'SSL certificate error' revoked \
    -H 'Juki-Purpose: pension.benefit' -H 'Juki-Operator: op-0042' "$url/v1/residents/?code=12345678901"
check "no client certificate, refused by NGINX" 400 'No required SSL certificate' - \
    -H 'Juki-Purpose: pension.benefit' -H 'Juki-Operator: op-0042' "$url/v1/residents/?code=12345678901"

# The audit trail: the allowed lookup above must have left records in Redis.
printf '\n--- audit trail ---\n'
stream='juki:{pension-service}:audit'
n=$(REDISCLI_AUTH=$(<"$secrets/juki-reader") redis-cli --user juki-reader -h 127.0.0.1 -p "$redis_port" \
    LLEN "$stream" 2>/dev/null || printf 'error')
printf '\n'
if [[ $n =~ ^[0-9]+$ ]] && ((n > 0)); then
    printf '✓ audit records in Redis: %s in %s\n' "$n" "$stream"
    passed=$((passed + 1))
else
    printf '✗ audit records in Redis: expected some in %s, got %s\n' "$stream" "$n"
    failed=$((failed + 1))
fi
printf '  $ REDISCLI_AUTH=$(cat %s) redis-cli --user juki-reader -p %s LLEN %s\n' \
    "$(shq "$secrets/juki-reader")" "$redis_port" "$(shq "$stream")"

if [[ -x $jukictl ]]; then
    # each command with the role it needs (the passwords stay in their files)
    env_line="JUKI_REDIS=127.0.0.1:$redis_port JUKI_AUDIT_KEY=$(shq "$key")"
    reader="--user juki-reader --password-file $(shq "$secrets/juki-reader")"
    control="--user juki-control --password-file $(shq "$secrets/juki-control")"
    if out=$(JUKI_REDIS=127.0.0.1:$redis_port JUKI_AUDIT_KEY=$key "$jukictl" verify \
        --user juki-reader --password-file "$secrets/juki-reader" 2>&1); then
        printf '\n✓ jukictl verify: audit chains intact\n'
        passed=$((passed + 1))
    else
        printf '\n✗ jukictl verify failed: %s\n' "$(head -n 3 <<<"$out")"
        failed=$((failed + 1))
    fi
    printf '  $ %s %s verify %s\n' "$env_line" "$(shq "$jukictl")" "$reader"
    # the archive: the archiver (--follow, every second) must have moved the demo's records
    # into PostgreSQL and signed a checkpoint that verifies with its public key alone
    if ((archiving)); then
        printf '\n--- archive ---\n'
        n='' out=''
        for ((i = 0; i < 100; i++)); do
            if out=$(JUKI_POSTGRES=$dsn "$jukictl" verify --public-key "$pub_key" 2>&1) &&
                [[ $out =~ ^ok:\ ([0-9]+)\ archived ]] && ((BASH_REMATCH[1] > 0)); then
                n=${BASH_REMATCH[1]}
                break
            fi
            alive_archiver=$(<"$run_dir/archiver.pid")
            kill -0 "$alive_archiver" 2>/dev/null || break
            sleep 0.1
        done
        printf '\n'
        if [[ -n $n ]]; then
            printf '✓ records archived in PostgreSQL: %s\n' "$n"
            passed=$((passed + 1))
            printf '✓ jukictl verify --public-key: a signed checkpoint reproduced\n'
            passed=$((passed + 1))
        else
            printf '✗ records archived in PostgreSQL: none verified in 10s: %s\n' \
                "$(head -n 3 <<<"$out")"
            printf '  archiver log: %s\n' "$(tail -n 3 "$run_dir/logs/archiver.log" 2>/dev/null)"
            failed=$((failed + 2))
        fi
        printf '  $ JUKI_POSTGRES=%s %s verify --public-key %s\n' "$(shq "$dsn")" \
            "$(shq "$jukictl")" "$(shq "$pub_key")"
        printf '  $ psql %s -c %s\n' "$(shq "$dsn")" \
            "$(shq 'SELECT list, count(*) FROM juki_records GROUP BY list')"
    fi
    cat <<JUKICTL
  more:
    $ $env_line $(shq "$jukictl") status $reader
    $ echo 12345678901 | $env_line $(shq "$jukictl") disclose $reader
    $ $env_line $(shq "$jukictl") report --from 2000-01-01 --to 2099-12-31 --format md $reader
    $ $env_line $(shq "$jukictl") stop --agency example-bank --reason "demo: suspected leak" $control
    $ $env_line $(shq "$jukictl") resume --agency example-bank $control
JUKICTL
fi

cat <<INFO

Logs:  $run_dir/logs/ (gateway-access.log, gateway-error.log, backend-*.log), $run_dir/redis/redis.log
Stop:  make stop   (or scripts/stop.sh)

$passed passed, $failed failed
INFO
((failed == 0)) || {
    printf '%s: %d check(s) failed; the demo is left running for inspection (make stop).\n' "$prog" "$failed" >&2
    exit 1
}
