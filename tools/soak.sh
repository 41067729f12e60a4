#!/usr/bin/env bash
# Soak test: builds `onyx` in release, serves a model repository of fixtures on loopback, and drives
# a bounded mix of valid and hostile requests for SECONDS (tools/soak.py). Exits non-zero on any 5xx
# outside the deliberate overload burst, an unexpected status, a crash, or RSS growth of 10 % or more.
#
#   tools/soak.sh SECONDS [soak.py options: --workers N, --port P]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: tools/soak.sh SECONDS [--workers N] [--port P]}
shift
swift build -c release --product onyx
exec python3 tools/soak.py --onyx .build/release/onyx --seconds "$seconds" "$@"
