#!/usr/bin/env bash
# Regenerates Sources/OnyxGRPC/Generated from Sources/OnyxGRPC/Proto/grpc_predict_v2.proto: the
# Open Inference Protocol's messages (swift-protobuf) and service stubs (grpc-swift-protobuf).
# The output is committed; builds never run protoc.
# Needs: protoc (Debian protobuf-compiler: tools/bootstrap.sh --with-generator) and the package's
# dependencies resolved (swift package resolve): the two protoc plugins are built from the
# resolved checkouts of swift-protobuf and grpc-swift-protobuf, so the generated code matches the
# runtime libraries the package links.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
proto_dir="$root/Sources/OnyxGRPC/Proto"
out="$root/Sources/OnyxGRPC/Generated"
checkouts="$root/.build/checkouts"
plugins="${ONYX_GRPC_PLUGIN_BUILD:-$root/.build/grpc-plugins}"

command -v protoc >/dev/null || { echo "protoc not found: tools/bootstrap.sh --with-generator" >&2; exit 1; }
for package in swift-protobuf grpc-swift-protobuf; do
    [[ -d "$checkouts/$package" ]] || { echo "$checkouts/$package missing: run swift package resolve" >&2; exit 1; }
done

swift build -c release --package-path "$checkouts/swift-protobuf" --scratch-path "$plugins/swift-protobuf" \
    --product protoc-gen-swift
swift build -c release --package-path "$checkouts/grpc-swift-protobuf" --scratch-path "$plugins/grpc-swift-protobuf" \
    --product protoc-gen-grpc-swift-2
swift_plugin="$(swift build -c release --package-path "$checkouts/swift-protobuf" --scratch-path "$plugins/swift-protobuf" --show-bin-path)/protoc-gen-swift"
grpc_plugin="$(swift build -c release --package-path "$checkouts/grpc-swift-protobuf" --scratch-path "$plugins/grpc-swift-protobuf" --show-bin-path)/protoc-gen-grpc-swift-2"

mkdir -p "$out"
rm -f "$out"/*.swift
# Package visibility: OnyxGRPC's own public API wraps the messages; its tests use them directly.
protoc --proto_path="$proto_dir" \
    --plugin=protoc-gen-swift="$swift_plugin" --swift_out="$out" --swift_opt=Visibility=Package \
    --plugin=protoc-gen-grpc-swift="$grpc_plugin" --grpc-swift_out="$out" \
    --grpc-swift_opt=Visibility=Package,Server=true,Client=true \
    grpc_predict_v2.proto
echo "regenerated $out ($(cd "$out" && ls *.swift | tr '\n' ' '))"
