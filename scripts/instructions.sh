#!/usr/bin/env bash
# Instructions per request of fixed workloads (tests/benches/instructions.rs),
# counted by callgrind: the same on every run of the same binary, so small
# changes can be compared on a noisy shared machine where times cannot.
# Usage: scripts/instructions.sh [REQUESTS] [WORKLOAD ...]
#   (default 20000 requests; workloads packet-pair, lent-pair and lengths-pair;
#   also bson-decode, bson-decode-crate, bson-encode, bson-encode-crate)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
requests="${1:-20000}"
shift || true
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(packet-pair lent-pair lengths-pair)
bin=$(cargo bench -p framewire-tests --bench instructions --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '| workload | requests | instructions | per request |\n|---|---:|---:|---:|\n'
for w in "${workloads[@]}"; do
    valgrind --tool=callgrind --callgrind-out-file="$out/$w.cg" \
        --toggle-collect="instructions::measured_*" "$bin" "$w" "$requests" \
        >"$out/$w.log" 2>&1 || { cat "$out/$w.log" >&2; exit 1; }
    ir=$(grep -E '^(summary|totals):' "$out/$w.cg" | head -1 | awk '{print $2}')
    printf '| %s | %s | %s | %s |\n' "$w" "$requests" "$ir" "$(( ir / requests ))"
done
