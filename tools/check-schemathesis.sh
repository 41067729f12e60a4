#!/usr/bin/env bash
# Property-based API check: schemathesis generates requests from docs/openapi.yaml against a live
# `onyx serve` (loopback, repository control on with a token) and fails on any 5xx or any response
# that does not match the spec (status, content type, headers, body schema).
#
#   tools/check-schemathesis.sh [SECONDS]      # default 120 s budget; needs schemathesis (tools/requirements.txt)
#
# ONYX=path/to/onyx picks the binary (default: .build/release/onyx, built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
onyx=${ONYX:-.build/release/onyx}
[ -x "$onyx" ] || swift build -c release --product onyx

repository=$(mktemp -d)
for m in mlp:mlp_legacy lenet:lenet_dynamo; do
    mkdir -p "$repository/${m%%:*}/1"
    cp "Fixtures/${m#*:}/model.onnx" "$repository/${m%%:*}/1/model.onnx"
done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=schemathesis-token
"$onyx" serve --model-repository "$repository" --port "$port" --max-body-bytes 1048576 \
    --enable-repository-control --control-token "$token" --log-level error &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$repository"' EXIT
curl -sf -o /dev/null --retry 30 --retry-connrefused --retry-delay 1 "http://127.0.0.1:$port/v2/health/ready"

status=0
# Run from the temporary folder: schemathesis keeps a .schemathesis/ cache in its working directory.
root=$PWD
(cd "$repository" && st --config-file "$root/tools/schemathesis.toml" run "$root/docs/openapi.yaml" --url "http://127.0.0.1:$port" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --header "Authorization: Bearer $token" \
    --max-time "$seconds" --workers 2 --seed 1 --suppress-health-check all) || status=$?
kill -0 "$server" 2>/dev/null || { echo "onyx serve is no longer running"; status=1; }
exit $status
