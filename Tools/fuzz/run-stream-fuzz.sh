#!/usr/bin/env bash
# Fuzzes the PSIC stream parser and entropy decoder with libFuzzer + AddressSanitizer for a
# bounded time. Usage: Tools/fuzz/run-stream-fuzz.sh [SECONDS]   (default 60)
# Crashes are written to .build-fuzz/artifacts/ and the script exits non-zero; replay one with
#   swift run PSICStreamFuzz .build-fuzz/artifacts/crash-…
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
seconds="${1:-60}"
scratch=.build-fuzz
# SwiftPM also links the ShaderEmbedder plugin tool with these flags, and gold stops on it
# ("internal error in format_file_lineno"); the build goes on, as PSICStreamFuzz does not use it.
swift build -c release --product PSICStreamFuzz --scratch-path "$scratch" \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DPSIC_FUZZ -Xlinker --export-dynamic
fuzzer="$scratch/release/PSICStreamFuzz"
# Seed corpus from the ordinary build of the same target (it has its own main).
swift build --product PSICStreamFuzz
corpus="$scratch/corpus"
mkdir -p "$corpus" "$scratch/artifacts"
.build/debug/PSICStreamFuzz --write-seeds "$corpus"
"$fuzzer" "$corpus" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$scratch/artifacts/" -print_final_stats=1
