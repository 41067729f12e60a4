#!/usr/bin/env bash
# Installs the Debian packages Onyx needs to build. Idempotent: installs only what is missing.
#   libprotobuf-c-dev  the protobuf-c runtime the ONNX decoder links against
#   pkg-config         lets SwiftPM find it
#   curl               tools/test.sh waits for the live server with it
#   protobuf-c-compiler only to regenerate Sources/COnnxProto (tools/generate-onnx-proto.sh)
#   protobuf-compiler   only to regenerate Sources/OnyxGRPC/Generated (tools/generate-grpc.sh)
set -euo pipefail

packages=(libprotobuf-c-dev pkg-config curl)
if [[ "${1:-}" == "--with-generator" ]]; then packages+=(protobuf-c-compiler protobuf-compiler); fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "bootstrap: all build packages present (${packages[*]})"
    exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "bootstrap: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
