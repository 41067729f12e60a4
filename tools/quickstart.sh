#!/usr/bin/env bash
# Bootstraps the build, builds Onyx in release mode, and runs a bundled fixture model end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/bootstrap.sh
swift build -c release --product onyx

fixture=Fixtures/mlp_legacy
echo
echo "== onyx inspect $fixture/model.onnx"
.build/release/onyx inspect "$fixture/model.onnx"
echo
echo "== onyx run $fixture/model.onnx --input $fixture/test_data_set_0/input_0.pb"
.build/release/onyx run "$fixture/model.onnx" --input "$fixture/test_data_set_0/input_0.pb"
echo
echo "== expected (PyTorch):"
.build/release/onyx run "$fixture/model.onnx" --input "$fixture/test_data_set_0/input_0.pb" --output-dir /tmp/onyx-quickstart >/dev/null
python3 - "$fixture" 2>/dev/null <<'PY' || echo "(python3 with onnx not installed: skipped the comparison)"
import sys, numpy as np, onnx
from onnx import numpy_helper
f = sys.argv[1]
exp = numpy_helper.to_array(onnx.load_tensor(f + "/test_data_set_0/output_0.pb"))
got = numpy_helper.to_array(onnx.load_tensor("/tmp/onyx-quickstart/output_0.pb"))
print("max |onyx - pytorch| =", float(np.abs(exp - got).max()))
PY

# The main job: serve a bundled model and ask it something over HTTP (the Open Inference
# Protocol v2). The request screener takes raw request lines as strings (BYTES).
port=${ONYX_QUICKSTART_PORT:-8000}
echo
echo "== onyx serve Fixtures/screener/model.onnx --name screener --port $port"
.build/release/onyx serve Fixtures/screener/model.onnx --name screener --port "$port" --log-level warning &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
    sleep 0.1
done
request='{"inputs": [{"name": "request", "shape": [2, 1], "datatype": "BYTES",
  "data": ["GET /index.html HTTP/1.1", "GET /search?q=<script>alert(1)</script> HTTP/1.1"]}]}'
echo "== curl http://127.0.0.1:$port/v2/models/screener/infer -d '$request'"
curl -sf "http://127.0.0.1:$port/v2/models/screener/infer" -d "$request"
echo
echo "(label 1 = malicious; probabilities are [benign, malicious] per line)"
kill -TERM "$server"
wait "$server"
trap - EXIT
