#!/usr/bin/env bash
# Installs what the build needs and runs the whole test suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/bootstrap.sh
swift test
