#!/usr/bin/env bash
# Runs every ```sh block of docs/getting-started.md (or the markdown file given), in order, in one bash session, and fails if
# any command fails. The doc is the source of truth: nothing here repeats its commands.
#   - the tutorial folder (/tmp/onyx-tutorial) becomes a fresh temporary folder;
#   - port 8000 becomes a free-looking random port (CI machines run several servers);
#   - ONYX_SWIFT_BUILD_FLAGS (e.g. "--static-swift-stdlib --scratch-path .build-static") is added
#     to every `swift build`, so an existing build can be reused;
#   - a server the doc started in the background is stopped on exit, even after a failure.
# Needs torch, onnx, onnxscript (tools/requirements.txt) and tritonclient[http] (tools/requirements-ci.txt).
# Not part of tools/test.sh: installing torch is too heavy for CI.
set -euo pipefail
cd "$(dirname "$0")/.."

doc=${1:-docs/getting-started.md}
workdir=$(mktemp -d /tmp/onyx-getting-started.XXXXXX)
port=$((20000 + RANDOM % 20000))
flags=${ONYX_SWIFT_BUILD_FLAGS:-}
script="$workdir/steps.sh"

{
    echo 'set -euo pipefail'
    echo 'trap '\''if [ -n "${ONYX_PID:-}" ]; then kill "$ONYX_PID" 2>/dev/null || true; fi'\'' EXIT'
    # Each block is echoed before it runs, so a failure shows which step broke.
    awk -v flags="$flags" -v dir="$workdir/tutorial" -v port="$port" '
        /^```sh$/ { inside = 1; n += 1; printf "echo \"== step %d\"\n", n; next }
        /^```$/ && inside { inside = 0; next }
        inside {
            gsub("/tmp/onyx-tutorial", dir)
            gsub("8000", port)
            if (flags != "") gsub("swift build", "swift build " flags)
            print
        }
    ' "$doc"
} > "$script"

steps=$(grep -c '^echo "== step' "$script")
[ "$steps" -gt 0 ] || { echo "no \`\`\`sh blocks found in $doc" >&2; exit 1; }
echo "running $steps blocks of $doc in $workdir (port $port)"
if bash "$script"; then
    echo "getting-started: all $steps blocks passed"
    rm -rf "$workdir"
else
    status=$?
    echo "getting-started: FAILED (exit $status); the generated script is $script" >&2
    exit "$status"
fi
