#!/usr/bin/env bash
# Re-runs the diagnostic of docs/design.md ("where the rest of the time goes"): the analysis
# convs on lavapipe with conv2d_subgroup as shipped, without its input-window fetches (A),
# without its weight fetches (B) and without both (C), through PSIC_VULKAN_SHADER_DIR. The
# variants compute wrong values on purpose; only their times mean something. Needs the release
# psic binary and glslangValidator; pauses background training (quiet.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
src=Shaders/conv2d_subgroup.comp
window='LOAD_WINDOW(win[rr], ci, iy, ix0, WIN, SHIFT);'
weights='wl[f] = texelFetch(paramTexels, wq + min(f * SG + int(lane), NW4 - 1));'
grep -qF "$window" "$src" && grep -qF "$weights" "$src" || { echo "$src changed: update this script" >&2; exit 1; }
noWindow='[[unroll]] for (int j = 0; j < WIN; j++) win[rr][j] = float(iy + j + ci);'
noWeights='wl[f] = vec4(float(wq + f) * 1e-6);'
for v in A B C; do
  mkdir -p "$dir/$v"
  s=$(cat "$src")
  [ $v != B ] && s=${s//"$window"/"$noWindow"}
  [ $v != A ] && s=${s//"$weights"/"$noWeights"}
  printf '%s\n' "$s" > "$dir/$v/k.comp"
  glslangValidator -V --target-env vulkan1.1 -S comp -IShaders "$dir/$v/k.comp" -o "$dir/$v/conv2d_subgroup.spv" >/dev/null
done
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/share/vulkan/icd.d/lvp_icd.x86_64.json}
for v in shipped A B C; do
  printf '%-8s ' "$v"
  if [ $v = shipped ]; then unset PSIC_VULKAN_SHADER_DIR; else export PSIC_VULKAN_SHADER_DIR="$dir/$v"; fi
  Tools/scripts/quiet.sh .build/release/psic bench kernels --backend vulkan --repeats 3 2>/dev/null | grep "g_a.0 g_a.2" \
    | awk '{print $(NF-3), "ms,", $(NF-2), "GFLOP/s"}'
done
