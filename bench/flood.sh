#!/usr/bin/env bash
# bench/flood.sh — what `make bench-flood` runs.  A benchmark, not a test: exit 0 unless the
# set-up fails or the records and summaries do not count every refusal (exit 1).
#
#   wrk ─▶ client :CB (national certificate) ─┐
#                                             ├─▶ gateway (b) "juki on" ─▶ backend
#   wrk ─▶ client :CF (unmapped certificate) ─┘        └─ redis
#
# The agency's normal traffic alone for BENCH_BASE seconds, then the same traffic while a
# second wrk floods refusals from a trusted certificate that maps to no agency (403
# unknown_agency) for BENCH_SECONDS; prints the agency's served rate and errors in both,
# the flood's rate, and what the flood added to the trail: records of their own (at most
# juki_refusal_budget per client address and second: every flood request comes from the
# client NGINX's address), summary records, and whether records + suppressed count every
# refusal the flood got.
#
# Environment (defaults): BENCH_BASE=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=32 (each wrk)
#   BENCH_FLOOD_CONNECTIONS=32 BENCH_BUDGET (juki_refusal_budget; default the module's)
#   BENCH_PORT_OFFSET=0 BENCH_KEEP=0 JUKI_MODULE NGINX
set -euo pipefail
B_PROG=bench/flood.sh
# shellcheck source=bench/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

base=${BENCH_BASE:-5}
secs=${BENCH_SECONDS:-10}
fconns=${BENCH_FLOOD_CONNECTIONS:-32}
for v in "$base" "$secs" "$fconns"; do
    [[ $v =~ ^[0-9]+$ ]] || die "BENCH_BASE, BENCH_SECONDS, BENCH_FLOOD_CONNECTIONS must be integers"
done
((base >= 1 && base <= 60 && secs >= 1 && secs <= 60)) || die "BENCH_BASE and BENCH_SECONDS: 1..60"
if [[ -n ${BENCH_BUDGET:-} ]]; then
    [[ $BENCH_BUDGET =~ ^[0-9]+$ ]] || die "BENCH_BUDGET must be an integer"
    export BENCH_GATEWAY_EXTRA="${BENCH_GATEWAY_EXTRA:-} juki_refusal_budget $BENCH_BUDGET;"
fi

P_CF=$((18083 + B_OFF))
if (exec 3<>/dev/tcp/127.0.0.1/$P_CF) 2>/dev/null; then
    die "port $P_CF is in use (another bench running? set BENCH_PORT_OFFSET)"
fi

b_prepare

# the flood's client: the unmapped certificate, to the same gateway server (b)
# (its log counts the gateway's answers, also those wrk no longer waited for when it
# stopped: the client NGINX reads them anyway)
BENCH_CLIENT_EXTRA="upstream gw_f { server 127.0.0.1:$P_GB; keepalive 64; keepalive_requests 1000000; }
    log_format flood '\$upstream_status';
    server {
        listen 127.0.0.1:$P_CF;
        access_log $B_DIR/logs/flood.log flood;
        proxy_ignore_client_abort on;
        location / {
            proxy_ssl_certificate     $B_DIR/pki/unmapped.pem;
            proxy_ssl_certificate_key $B_DIR/pki/unmapped.key;
            proxy_pass https://gw_f;
        }
    }"
export BENCH_CLIENT_EXTRA
b_write_configs
b_start_all

s=$(b_curl_b 5)
[[ $s == 200 ]] || { tail -5 "$B_DIR"/logs/*-error.log >&2; die "the agency's path answered $s, not 200"; }
s=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$P_CF/v1/residents/" || true)
[[ $s == 403 ]] || { tail -5 "$B_DIR"/logs/*-error.log >&2; die "the flood's path answered $s, not 403"; }
sleep 1.1   # the sanity refusal's second is over

# counts, over the elements of juki:{_}:audit from an index: refusal records by decision,
# summaries and their recorded / suppressed sums
B_REFUSAL_LUA='
local function varint(e, i)
  local v, m = 0, 1
  while true do
    local b = string.byte(e, i)
    i = i + 1
    v = v + (b % 128) * m
    if b < 128 then return v, i end
    m = m * 128
  end
end
local r = redis.call("LRANGE", KEYS[1], tonumber(ARGV[1]), -1)
local own, sums, rec, sup = 0, 0, 0, 0
for _, e in ipairs(r) do
  local t = string.byte(e, 1)
  if t == 65 and string.byte(e, -1) == 17 then own = own + 1
  elseif t == 83 then
    local _, i = varint(e, 10)
    i = i + 6
    if string.byte(e, i) == 17 then
      local x, y
      _, i = varint(e, i + 1)
      x, i = varint(e, i)
      y, i = varint(e, i)
      sums = sums + 1
      rec = rec + x
      sup = sup + y
    end
  end
end
return {own, sums, rec, sup}'
nobody='juki:{_}:audit'

printf '# juki-gateway: a refusal flood beside an agency'"'"'s traffic\n\n'
printf 'machine: %s CPU, %s; wrk -c%s (agency) and -c%s (flood); redis AOF always\n' \
    "$(nproc)" "$(uname -r)" "$B_WRK_CONNS" "$fconns"
printf 'juki_refusal_budget: %s\n\n' "${BENCH_BUDGET:-10 (default)}"

b_wrk "$P_CB" "$base" "$B_DIR/base.txt" 1 || { cat "$B_DIR/base.txt" >&2; die "wrk failed"; }
sleep 0.3

cursor=$(b_audit_cursor)
last=$(b_stream_last "$nobody")
fl0=$(grep -c '^403$' "$B_DIR/logs/flood.log" || true)
be0=$(b_lines "$B_DIR/logs/backend-b.log")

B_WRK_CONNS=$fconns b_wrk "$P_CF" "$secs" "$B_DIR/flood.txt" 1 &
fpid=$!
b_wrk "$P_CB" "$secs" "$B_DIR/agency.txt" 1 || { cat "$B_DIR/agency.txt" >&2; die "wrk failed"; }
wait "$fpid" || { cat "$B_DIR/flood.txt" >&2; die "flood wrk failed"; }

sleep 2     # the last second's summary is written at the next full second
be=$(($(b_lines "$B_DIR/logs/backend-b.log") - be0))
read -r allow deny done_ <<<"$(b_audit_count "$cursor")"
mapfile -t rc < <(b_redis --raw EVAL "$B_REFUSAL_LUA" 1 "$nobody" "$last")
own=${rc[0]:-0} sums=${rc[1]:-0} srec=${rc[2]:-0} ssup=${rc[3]:-0}

v() { b_wrkval "$1" "$2"; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
row() { # NAME FILE
    printf '| %s | %d | %.0f | %s | %s | %d | %d | %d |\n' "$1" "$(v "$2" requests)" "$(v "$2" rps)" \
        "$(ms "$(v "$2" p50_us)")" "$(ms "$(v "$2" p99_us)")" "$(v "$2" status_200)" \
        "$(($(v "$2" non2xx) - $(v "$2" status_403)))" "$(v "$2" sockerr)"
}

printf '| traffic | requests | req/s | p50 ms | p99 ms | 200 | other non-2xx but 403 | socket errors |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
row "agency alone (${base} s)" "$B_DIR/base.txt"
row "agency during the flood (${secs} s)" "$B_DIR/agency.txt"
w403=$(v "$B_DIR/flood.txt" status_403)
printf '| flood: unmapped certificate (%s s) | %d | %.0f | %s | %s | — | %d | %d |\n' "$secs" \
    "$(v "$B_DIR/flood.txt" requests)" "$(v "$B_DIR/flood.txt" rps)" \
    "$(ms "$(v "$B_DIR/flood.txt" p50_us)")" "$(ms "$(v "$B_DIR/flood.txt" p99_us)")" \
    "$(($(v "$B_DIR/flood.txt" non2xx) - w403))" "$(v "$B_DIR/flood.txt" sockerr)"
fl=$(($(grep -c '^403$' "$B_DIR/logs/flood.log" || true) - fl0))

printf '\n## What the flood added to the trail\n\n'
printf 'refusals the gateway answered:  %d (wrk saw %d; the rest were in flight when it stopped)\n' \
    "$fl" "$w403"
printf 'refusal records of their own:  %d (%.1f per second of flood)\n' "$own" \
    "$(awk -v n="$own" -v s="$secs" 'BEGIN { print n / s }')"
printf 'summary records:               %d (recorded %d, suppressed %d)\n' "$sums" "$srec" "$ssup"
printf 'records + suppressed:          %d\n' $((own + ssup))
printf 'agency records in the window:  allow=%s completion=%s (backend saw %s)\n' \
    "$allow" "$done_" "$be"
printf 'records added in all:          %d for %d requests\n' $((allow + deny + done_ + sums)) \
    $(($(v "$B_DIR/agency.txt" requests) + $(v "$B_DIR/flood.txt" requests)))

status=0
if ((own + ssup == fl)); then
    printf '\ncount: OK, every refusal is a record or counted in a summary\n'
else
    printf '\ncount: MISMATCH, %d refusals, %d recorded + %d counted\n' "$fl" "$own" "$ssup"
    status=1
fi
if ((srec > own)); then
    printf 'summaries: MISMATCH, they say %d recorded, %d records\n' "$srec" "$own"
    status=1
fi
exit $status
