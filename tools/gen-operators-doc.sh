#!/usr/bin/env bash
# Regenerates docs/operators.md from the operator registry and a run of ONNX's node suite.
#   tools/gen-operators-doc.sh     (builds onyx in release; generates Generated/node if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product onyx >/dev/null
[[ -d Generated/node ]] || python3 tools/gen-node-tests.py Generated/node
results=$(mktemp)
trap 'rm -f "$results"' EXIT
.build/release/onyx test Generated/node --tolerances Tests/Conformance/tolerances.txt --json > "$results" 2>/dev/null || true
.build/release/onyx operators --results "$results" > docs/operators.md
echo "docs/operators.md: $(grep -c '^| [A-Z]' docs/operators.md) operators; $(sed -n 's/^ONNX node suite: //p' docs/operators.md)"
