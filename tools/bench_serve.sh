#!/usr/bin/env bash
# Serving throughput and latency on loopback: `onyx serve` vs Flask + gunicorn + onnxruntime on the
# same model and the same request body, measured with wrk in one run.
#
#   tools/bench_serve.sh [MODEL.onnx] [DURATION_SECONDS] [CONNECTIONS]
#
# Needs: wrk (apt-get install wrk), gunicorn and flask (pip), a release build of onyx.
set -euo pipefail
cd "$(dirname "$0")/.."

model="$(realpath "${1:-Fixtures/mlp_legacy/model.onnx}")"
duration="${2:-10}"
connections="${3:-16}"
onyx_port=18700
flask_port=18701
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

swift build -c release --product onyx >/dev/null

# One request body: the fixture's first test input, batch 1, as {"shape", "data"} and as OIP v2.
python3 - "$model" "$work" <<'PY'
import json, sys, onnx, numpy as np
model = onnx.load(sys.argv[1])
dims = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
dims[0] = 1
x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
data = [float(v) for v in x.flatten()]
json.dump({"shape": dims, "data": data}, open(sys.argv[2] + "/flask.json", "w"))
json.dump({"inputs": [{"name": model.graph.input[0].name, "shape": dims, "datatype": "FP32", "data": data}]},
          open(sys.argv[2] + "/oip.json", "w"))
PY
cat > "$work/post.lua" <<'LUA'
local f = io.open(os.getenv("BODY"), "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA

.build/release/onyx serve "$model" --name m --port $onyx_port --threads 1 --log-level warning &
MODEL="$model" THREADS=1 gunicorn -w 2 -b 127.0.0.1:$flask_port --chdir tools --log-level warning flask_baseline:app &
for port in $onyx_port $flask_port; do
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
done
sleep 1

run() {  # name url body
    local out="$work/result.txt"
    BODY="$3" wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/post.lua" "$2" > "$out"
    local rps p50 p99 errors
    rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    errors=$(awk '/Non-2xx/ {print $NF}' "$out")
    printf '| %-28s | %10s | %8s | %8s | %s |\n' "$1" "$rps" "$p50" "$p99" "${errors:-0}"
}

echo "model: $model, wrk -t2 -c$connections -d${duration}s, 2 cores shared by server and load generator"
echo
echo "| server | requests/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
run "onyx /v2 infer (JSON)" "http://127.0.0.1:$onyx_port/v2/models/m/infer" "$work/oip.json"
run "onyx /predictions (JSON)" "http://127.0.0.1:$onyx_port/predictions/m" "$work/flask.json"
run "Flask+gunicorn+onnxruntime" "http://127.0.0.1:$flask_port/predict" "$work/flask.json"
