#!/usr/bin/env bash
# bench/invariant.sh — the short fault check (~30 s) for the test suite: under wrk load
# through mutual TLS, kill -9 Redis (restarted on the same AOF) and CLIENT PAUSE it past the
# gateway's timeout; exit 1 if the backend ever saw more requests than there are allow
# records, if a gateway worker crashed, or if service did not recover within 2 s; exit 2
# when the set-up fails (missing tool, module not built, port in use).
#
# It is bench/faults.sh with two phases and shorter load; same environment variables.
# Ports 18081-18444 and Redis 18379 (BENCH_PORT_OFFSET shifts them), never the suite's.
export FAULT_PHASES=${FAULT_PHASES:-"redis-kill9 client-pause"}
export FAULT_PHASE_SECONDS=${FAULT_PHASE_SECONDS:-6}
export FAULT_LEAD=${FAULT_LEAD:-2}
export B_PROG=bench/invariant.sh
exec "$(dirname -- "${BASH_SOURCE[0]}")/faults.sh" "$@"
