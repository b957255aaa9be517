#!/usr/bin/env bash
# Installs dependencies, builds PSIC and runs the whole test suite. Vulkan tests run on the
# first Vulkan device; with no GPU, Mesa's lavapipe (installed below) runs the shaders on the CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
Tools/scripts/install-debian-deps.sh
if [ -z "${VK_DRIVER_FILES:-}" ] && ! ls /usr/share/vulkan/icd.d/ 2>/dev/null | grep -qv lvp; then
  export VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
fi
swift build --build-tests
# Bounded fuzzing of the stream parser and entropy decoder (libFuzzer + AddressSanitizer),
# before the tests so that the test runner's summary closes the log.
Tools/fuzz/run-stream-fuzz.sh "${PSIC_FUZZ_SECONDS:-60}"
# The graph recorder's barriers, checked by the Vulkan validation layer (missing barriers do not
# change results on lavapipe, which runs dispatches in order).
Tools/scripts/vulkan-sync-check.sh
# The command line on good and bad inputs (exit statuses, errors that name the file at fault).
Tools/scripts/cli-check.sh .build/debug/psic
# The side-by-side benchmark script, with stand-in executables (no build needed).
Tools/scripts/compare-psic-check.sh
swift test --skip-build
