#!/usr/bin/env bash
# Re-runs the diagnostics of docs/design.md ("where the rest of the time goes", "where g_a.0's
# time goes"): g_a.0, the analysis transform's one layer on conv2d_subgroup under the automatic
# route, on lavapipe with the kernel as shipped, without its input-window fetches (A), without
# its weight fetches (B), without both (C), with its stores guarded by a test that never passes
# (D), and with none of the three (E), through PSIC_VULKAN_SHADER_DIR. Two rounds. The variants
# compute wrong values on purpose; only their times mean something. Needs the release psic
# binary and glslangValidator; pauses background training (quiet.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
src=Shaders/conv2d_subgroup.comp
window='LOAD_WINDOW(win[rr], ci, iy, ix0, WIN, SHIFT);'
weights='wl[f] = texelFetch(paramTexels, wq + min(f * SG + int(lane), NW4 - 1));'
store='if (ox0 + p < pc.outW) dst[rowBase + ox0 + p] = activate(acc[o][r][p]);'
for s in "$window" "$weights" "$store"; do
  grep -qF "$s" "$src" || { echo "$src changed: update this script" >&2; exit 1; }
done
noWindow='[[unroll]] for (int j = 0; j < WIN; j++) win[rr][j] = float(iy + j + ci);'
noWeights='wl[f] = vec4(float(wq + f) * 1e-6);'
noStore='if (ox0 + p < pc.outW \&\& acc[o][r][p] == 1.2345e30) dst[rowBase + ox0 + p] = activate(acc[o][r][p]);'
for v in A B C D E; do
  mkdir -p "$dir/$v"
  s=$(cat "$src")
  case $v in A|C|E) s=${s//"$window"/"$noWindow"} ;; esac
  case $v in B|C|E) s=${s//"$weights"/"$noWeights"} ;; esac
  case $v in D|E) s=${s//"$store"/"${noStore//\\/}"} ;; esac
  printf '%s\n' "$s" > "$dir/$v/k.comp"
  glslangValidator -V --target-env vulkan1.1 -S comp -IShaders "$dir/$v/k.comp" -o "$dir/$v/conv2d_subgroup.spv" >/dev/null
done
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/share/vulkan/icd.d/lvp_icd.x86_64.json}
unset PSIC_VULKAN_WINOGRAD
for round in 1 2; do
  for v in shipped A B C D E; do
    printf 'round %d %-8s ' "$round" "$v"
    if [ $v = shipped ]; then unset PSIC_VULKAN_SHADER_DIR; else export PSIC_VULKAN_SHADER_DIR="$dir/$v"; fi
    Tools/scripts/quiet.sh .build/release/psic bench kernels --backend vulkan --repeats 5 --layers g_a.0 2>/dev/null \
      | sed 's/.*bits) //' | awk '$1 == "g_a.0" && $2 != "g_a.2" {print "g_a.0", $(NF-4), "ms"; exit}'
  done
done
