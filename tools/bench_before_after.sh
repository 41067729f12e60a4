#!/usr/bin/env bash
# Times two onyx binaries on the same models, alternating, 1 thread: for a change that must keep
# speed (a refactor), the ratio after/before per model. Medians of the runs' p50.
#   tools/bench_before_after.sh BEFORE/onyx AFTER/onyx [--rounds N] [--threads T] MODEL.onnx …
# Build "before" from the commit before the change in a worktree of its own:
#   git worktree add ../before <commit> && (cd ../before && swift build -c release --product onyx)
set -euo pipefail
before=$1 after=$2; shift 2
rounds=3 threads=1
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
p50() { "$1" bench "$2" --threads "$threads" --duration 1.5 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["p50_ms"])'; }
printf '%-28s %12s %12s %8s\n' model before_ms after_ms ratio
for model in "$@"; do
    b=() a=()
    for _ in $(seq "$rounds"); do b+=("$(p50 "$before" "$model")"); a+=("$(p50 "$after" "$model")"); done
    python3 - "$model" "${b[*]}" "${a[*]}" <<'PY'
import statistics, sys, os
name = os.path.basename(os.path.dirname(sys.argv[1])) or sys.argv[1]
b = statistics.median(map(float, sys.argv[2].split())); a = statistics.median(map(float, sys.argv[3].split()))
print(f"{name:<28} {b:12.4f} {a:12.4f} {a / b:8.3f}")
PY
done
