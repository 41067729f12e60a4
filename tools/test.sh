#!/usr/bin/env bash
# Installs what the build needs and runs the whole test suite. CI runs exactly this.
#   1. swift test: unit, operator, fixture and server tests (HummingbirdTesting), and ONNX's node
#      suite (generated into Generated/node) for every case in Tests/Conformance/expected-pass.txt;
#      then the int8 suites again with VNNI masked (ONYX_VNNI=0), as a CPU without it runs them.
#   2. A live `onyx serve` on two fixtures (the MLP; the text screener, BYTES in), checked with
#      Triton's own clients over HTTP and gRPC (tools/check_tritonclient.py, check_tritonclient_grpc.py).
#      A stateful model (Fixtures/stateful_gru) streamed in sequences with both clients (tools/check_sequence.py).
#   3. SIGTERM while requests are in flight over HTTP and gRPC: all answered, exit 0 (tools/check_sigterm.py).
#   4. The Examples package (Onyx used as a dependency) builds; screen-requests runs on its CSV and
#      screen-text on its request lines (the text screener, string input).
#   5. Every public declaration of Onyx, OnyxServe and OnyxGRPC has a /// doc comment (tools/check-public-docs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/bootstrap.sh
tools/check-public-docs.sh
python3 -m pip install --quiet --disable-pip-version-check -r tools/requirements-ci.txt
python3 tools/gen-node-tests.py Generated/node
swift build --product onyx
swift test
# The heap is measured process-wide: the allocation tests run in a process of their own.
ONYX_ALLOCATION_TESTS=1 swift test --filter AllocationTests
# The int8 suites once more with VNNI masked (ONYX_VNNI=0): the AVX-512 table of a CPU without
# VNNI (vpmaddwd depthwise rows, AVX2's integer GEMM), which a VNNI CPU otherwise never runs.
ONYX_VNNI=0 swift test --skip-build --filter \
    'KernelTableTests|QuantizedKernelTests|QuantizedConvolutionTests|QuantizedContribTests|IntegerGemmTests|IntegerMatMulTests|DynamicQuantizationTests|QuantizationTests'

port=$((20000 + RANDOM % 20000))
# Starts `onyx serve ARGS...` on $port (HTTP) and $port + 2 (gRPC) and waits until it is ready.
start_server() {
    .build/debug/onyx serve "$@" --port "$port" --grpc-port $((port + 2)) --log-level warning &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
        sleep 0.1
    done
}
stop_server() {
    kill -TERM "$server"
    wait "$server"
    trap - EXIT
}
# Serves a fixture and checks it with Triton's client: NAME FOLDER.
check_with_tritonclient() {
    start_server "Fixtures/$2/model.onnx" --name "$1"
    python3 tools/check_tritonclient.py --url "127.0.0.1:$port" --model "$1" --fixture "Fixtures/$2"
    python3 tools/check_tritonclient_grpc.py --url "127.0.0.1:$((port + 2))" --model "$1" --fixture "Fixtures/$2"
    stop_server
}
check_with_tritonclient mlp mlp_legacy
check_with_tritonclient screener screener

# A stateful model whose state the server keeps per sequence, streamed with both clients.
repository=$(mktemp -d)
mkdir -p "$repository/gru/1"
cp Fixtures/stateful_gru/model.onnx "$repository/gru/1/"
echo '{"sequence_batching": {"state": [{"input_name": "state", "output_name": "stateN"}]}}' > "$repository/gru/config.json"
start_server --model-repository "$repository"
python3 tools/check_sequence.py --http-url "127.0.0.1:$port" --grpc-url "127.0.0.1:$((port + 2))" \
    --model gru --fixture Fixtures/stateful_gru
stop_server
rm -rf "$repository"

python3 tools/check_sigterm.py --port $((port + 1)) --grpc-port $((port + 3))

swift build --package-path Examples
swift run --package-path Examples --skip-build screen-requests
swift run --package-path Examples --skip-build screen-text
