#!/usr/bin/env bash
# bench/anomaly.sh — what the anomaly rules cost: bench/run.sh twice, the
# gateway (b) without and then with two rules, each run alternating (a) and
# (b) as usual; the ratio b/a of each run cancels out how busy the machine
# was, and their quotient is the throughput the rules keep.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

rules='juki_anomaly distinct_subjects=1000 window=1h; juki_anomaly denials=1000 window=10m;'

ratio() { awk '/^ratio b\/a/ { print $4; exit }' "$1"; }

out=$(mktemp -d "${TMPDIR:-/tmp}/juki-anomaly.XXXXXX")
trap 'rm -rf "$out"' EXIT

bench/run.sh >"$out/without.txt"
BENCH_GATEWAY_EXTRA="$rules" bench/run.sh >"$out/with.txt"

without=$(ratio "$out/without.txt")
with=$(ratio "$out/with.txt")

printf '## Anomaly rules\n\nrules: `%s`\n\n' "$rules"
printf '| run | ratio b/a |\n|---|---:|\n| without rules | %s |\n| with rules | %s |\n\n' \
    "$without" "$with"
awk -v a="$without" -v b="$with" 'BEGIN {
    kept = b / a
    printf "throughput kept with the rules: %.3f (cost %.1f%%, target <= 3%%: %s)\n",
           kept, (1 - kept) * 100, (kept >= 0.97 ? "met" : "NOT met")
}'
