#!/usr/bin/env bash
# Load test of `psic serve` on loopback: throughput and p50/p99 latency with batching off
# (--max-batch 1) and on, side by side. The server runs inside the psic-loadtest process, bound to
# 127.0.0.1 only; the run is bounded by --requests (default 64) and --deadline (seconds).
# Extra arguments go to `psic-loadtest` (see its --help), e.g.:
#   Tools/scripts/loadtest-serve.sh --backend cpu --requests 64 --concurrency 8 --max-batch 8
# PSIC_CONFIG=debug skips the (long) release build of the dependencies.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
config="${PSIC_CONFIG:-release}"
swift build -c "$config" --product psic-loadtest
exec ".build/$config/psic-loadtest" "$@"
