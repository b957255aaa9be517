#!/usr/bin/env bash
# Re-runs the stage split of docs/design.md ("Winograd 5x5/2 convolutions on lavapipe"): the
# analysis convs on lavapipe with the Winograd kernels as shipped, then with some of its three
# kernels replaced by ones that return at once (through PSIC_VULKAN_SHADER_DIR): products only
# (input and output transforms empty), transforms only (products empty), and none (all three
# empty: what dispatching and the barriers cost). The variants compute wrong values on purpose;
# only their times mean something. Needs the release psic binary and glslangValidator; pauses
# background training (quiet.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
unset PSIC_VULKAN_WINOGRAD  # the automatic choice, as the codec runs
kernels="conv2d_winograd_input conv2d_winograd_gemm conv2d_winograd_output"
for k in $kernels; do
  grep -q '^void main() {$' "Shaders/$k.comp" || { echo "Shaders/$k.comp changed: update this script" >&2; exit 1; }
  sed 's/^void main() {$/void main() { if (pc.inC > -1000000) return;/' "Shaders/$k.comp" > "$dir/$k.comp"
done
empty() {  # empty KERNEL... into a fresh variant folder, printed
  local v; v=$(mktemp -d -p "$dir")
  for k in "$@"; do glslangValidator -V --target-env vulkan1.1 -S comp -IShaders "$dir/$k.comp" -o "$v/$k.spv" >/dev/null; done
  echo "$v"
}
products=$(empty conv2d_winograd_input conv2d_winograd_output)
transforms=$(empty conv2d_winograd_gemm)
none=$(empty $kernels)
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/share/vulkan/icd.d/lvp_icd.x86_64.json}
for v in shipped products transforms none; do
  printf '%-11s ' "$v"
  if [ $v = shipped ]; then unset PSIC_VULKAN_SHADER_DIR; else export PSIC_VULKAN_SHADER_DIR="${!v}"; fi
  Tools/scripts/quiet.sh .build/release/psic bench kernels --backend vulkan --repeats 3 2>/dev/null \
    | grep -E "g_a\.2 |g_a\.0 g_a\.2" \
    | awk '/g_a\.0 g_a\.2/ {printf "g_a convs %s ms", $(NF-3); next} {printf "g_a.2 %s ms, ", $(NF-4)} END {print ""}'  # layer rows end in the agreement column
done
