#!/usr/bin/env bash
# Builds and runs one libFuzzer target of the Fuzz/ package.
#
#   tools/fuzz.sh TARGET SECONDS [extra libFuzzer flags…]
#
# TARGET: model   — ONNX model bytes → Model(bytes:) → InferenceSession → one run on zeros
#         json    — JSON /infer body → InferenceProtocol.decodeRequest (JSONParser, TensorJSON)
#         binary  — 4-byte header length + body → decodeRequest with the binary tensor extension
#
# Seeds are generated into Fuzz/Corpus/TARGET-seed (git-ignored); new inputs go to
# Fuzz/Corpus/TARGET; crashes, leaks, timeouts and OOMs to Fuzz/Crashes/TARGET/.
# FUZZ_SANITIZE=fuzzer,address adds AddressSanitizer (about 2× slower).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

target=${1:?usage: tools/fuzz.sh model|json|binary SECONDS [libFuzzer flags]}
seconds=${2:?usage: tools/fuzz.sh model|json|binary SECONDS [libFuzzer flags]}
shift 2
case "$target" in
    model) product=FuzzModel ;;
    json) product=FuzzTensorJSON ;;
    binary) product=FuzzBinaryRequest ;;
    *) echo "unknown target '$target' (model, json, binary)" >&2; exit 2 ;;
esac

# Swift's backtracer would catch the trap (SIGILL) first and exit before libFuzzer saves the input.
export SWIFT_BACKTRACE=enable=no

sanitize=${FUZZ_SANITIZE:-fuzzer}
swift build --package-path Fuzz -c release -Xswiftc "-sanitize=$sanitize" --product "$product"
binary="$root/Fuzz/.build/release/$product"

seeds="$root/Fuzz/Corpus/$target-seed"
corpus="$root/Fuzz/Corpus/$target"
crashes="$root/Fuzz/Crashes/$target"
mkdir -p "$seeds" "$corpus" "$crashes"

request() { printf '%s' "$2" > "$seeds/$1"; }
# binary seeds: 4-byte little-endian Inference-Header-Content-Length (ffffffff: no header), then the body
binary_request() {
    local name=$1 json=$2 tail_hex=$3
    local n=${#json}
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))" > "$seeds/$name"
    printf '%s' "$json" >> "$seeds/$name"
    printf "$tail_hex" >> "$seeds/$name"
}

case "$target" in
model)
    for f in Fixtures/*/model.onnx; do cp "$f" "$seeds/$(basename "$(dirname "$f")").onnx"; done
    # ONNX's node suite: one small model per op and variant, when it has been generated.
    node=${FUZZ_NODE_DIR:-Generated/node}
    if [ -d "$node" ]; then
        for d in "$node"/*/; do
            [ -f "$d/model.onnx" ] && [ "$(stat -c %s "$d/model.onnx")" -le 4096 ] && cp "$d/model.onnx" "$seeds/$(basename "$d").onnx"
        done
    fi
    ;;
json)
    request fp32 '{"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[1,2,3,4.5,-6e-3,7]}]}'
    request nested '{"id":"r1","inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2],[3,4]]}],"outputs":[{"name":"y"}]}'
    request types '{"inputs":[{"name":"a","datatype":"INT64","shape":[3],"data":[-9223372036854775808,0,9223372036854775807]},{"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]},{"name":"c","datatype":"UINT8","shape":[1],"data":[255]},{"name":"d","datatype":"FP16","shape":[2],"data":[NaN,-Infinity]}]}'
    request escapes '{"id":"\u00e9\ud83d\ude00\n","inputs":[{"name":"x\"y","datatype":"float32","shape":[],"data":[1e308]}],"parameters":{"binary_data_output":true}}'
    request mixed '{"inputs":[{"name":"x","datatype":"FP64","shape":[3],"data":[1,true,2.5]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}'
    ;;
binary)
    binary_request fp32 '{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]}' '\x00\x00\x80\x3f\x00\x00\x00\x40'
    binary_request bool '{"inputs":[{"name":"b","datatype":"BOOL","shape":[3],"parameters":{"binary_data_size":3}},{"name":"i","datatype":"INT16","shape":[1],"parameters":{"binary_data_size":2}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}' '\x01\x00\x01\xff\x7f'
    binary_request mixed '{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[5]},{"name":"y","datatype":"UINT8","shape":[2,2],"parameters":{"binary_data_size":4}}]}' '\x01\x02\x03\x04'
    printf '\xff\xff\xff\xff{"inputs":[{"name":"x","datatype":"FP32","shape":[0],"parameters":{"binary_data_size":0}}]}' > "$seeds/noheader"
    ;;
esac

flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/")
case "$target" in
    json | binary) flags+=(-dict="$root/Fuzz/json.dict" -max_len=4096) ;;
    model) flags+=(-max_len=300000) ;;
esac
exec "$binary" "${flags[@]}" "$@" "$corpus" "$seeds"
