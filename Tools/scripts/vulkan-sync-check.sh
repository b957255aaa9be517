#!/usr/bin/env bash
# Runs the tests that record whole Vulkan graphs (several nodes, batches, Winograd bands) under
# the Khronos validation layer with synchronization validation, and fails on any validation
# error. lavapipe runs dispatches one after another, so a missing barrier never changes a result
# there; the layer reports it all the same (a hazard between two accesses with no barrier
# between them), which makes this the test of the graph recorder's barriers.
# Needs the built tests (swift build --build-tests) and Debian's vulkan-validationlayers.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -f /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json ]; then
  echo "error: the Khronos validation layer is missing: apt-get install vulkan-validationlayers" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
filter="VulkanTransformTests|VulkanWinogradTests|VulkanCPUAgreementTests|BatchRunTests|GoldenVectorTests|BatchCodecTests"
status=0
VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation \
VK_LAYER_ENABLES=VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT \
  swift test --skip-build --filter "$filter" >"$log" 2>&1 || status=$?
errors=$(grep -c "Validation Error" "$log" || true)
grep "Validation Error" "$log" | head -5 >&2 || true
grep -E "Executed [0-9]+ tests" "$log" | tail -1
if [ "$status" -ne 0 ]; then
  tail -40 "$log" >&2
  echo "error: the tests failed under the validation layer (exit $status)" >&2
  exit 1
fi
if [ "$errors" -ne 0 ]; then
  echo "error: $errors Vulkan validation errors (synchronization hazards or API misuse), first ones above" >&2
  exit 1
fi
echo "Vulkan synchronization validation: no errors"
