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
