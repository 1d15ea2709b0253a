#!/usr/bin/env bash
# bench/agencies.sh — 10,000 agencies load and serve as fast as 10: the
# agency lookup is a hash lookup, not a scan.  Generates N extra agencies
# (random fingerprints, distinct subjects, the bench purpose), then times
# `nginx -t` of the gateway and runs bench/run.sh with 10 and with 10,000.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

out=$(mktemp -d "${TMPDIR:-/tmp}/juki-agencies.XXXXXX")
trap 'rm -rf "$out"' EXIT

gen() { # N FILE
    awk -v n="$1" 'BEGIN {
        srand(7)
        for (i = 0; i < n; i++) {
            fp = ""
            for (j = 0; j < 32; j++) { fp = fp sprintf("%02x", int(rand() * 256)) }
            printf "juki_agency gen-%05d {\n    kind municipality;\n", i
            printf "    certificate_sha256 %s;\n", fp
            printf "    subject \"CN=gen-%05d,O=Generated City,C=JP\";\n", i
            printf "    purposes bench.lookup;\n}\n"
        }
    }' >"$2"
}

ratio() { awk '/^ratio b\/a/ { print $4; exit }' "$1"; }
rps_b() { awk -F'|' '/^\| \(b\)/ { gsub(/ /, "", $3); print $3; exit }' "$1"; }

printf '## Agencies: 10 against 10,000\n\n'
printf '| agencies | nginx -t (s) | ratio b/a | (b) req/s |\n|---:|---:|---:|---:|\n'

for n in 10 10000; do
    gen "$n" "$out/agencies-$n.conf"
    BENCH_GATEWAY_EXTRA="include $out/agencies-$n.conf;" \
        bench/run.sh >"$out/run-$n.txt" 2>"$out/run-$n.err" \
        || { cat "$out/run-$n.err" >&2; exit 1; }
    t=$(awk '/^nginx -t of the gateway took/ { print $7; exit }' \
            "$out/run-$n.err")
    printf '| %s | %s | %s | %s |\n' "$n" "${t:-?}" "$(ratio "$out/run-$n.txt")" \
        "$(rps_b "$out/run-$n.txt")"
done
