#!/usr/bin/env bash
# Measures the Vulkan kernels on a newer lavapipe without installing it: downloads Debian
# bookworm-backports' mesa-vulkan-drivers (and the libdrm it needs) into a folder, points the
# Vulkan loader at that driver through its own ICD file, and runs `psic bench kernels` once with
# the installed driver and once with the backports one, interleaved, ROUNDS times (default 2).
# Nothing on the system changes: no apt source is added, no package installed.
#   Tools/scripts/lavapipe-backports.sh [ROUNDS] [extra psic bench kernels options]
# Needs the release psic binary (swift build -c release) and network access to Debian's archive.
# Pauses background training while it measures (quiet.sh). docs/design.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
shift || true
psic=.build/release/psic
[ -x "$psic" ] || { echo "no $psic: run 'swift build -c release' first" >&2; exit 1; }
dir=${PSIC_MESA_DIR:-/tmp/psic-mesa-backports}
suite=bookworm-backports
if [ ! -f "$dir/lvp.json" ]; then
  mkdir -p "$dir/lists/partial" "$dir/debs" "$dir/root"
  echo "deb http://deb.debian.org/debian $suite main" > "$dir/sources.list"
  apt_opts=(-o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$dir/lists" -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update >/dev/null
  (cd "$dir/debs" && apt-get "${apt_opts[@]}" download mesa-vulkan-drivers/$suite libdrm2/$suite libdrm-amdgpu1/$suite)
  for d in "$dir"/debs/*.deb; do dpkg -x "$d" "$dir/root"; done
  lib="$dir/root/usr/lib/x86_64-linux-gnu"
  [ -f "$lib/libvulkan_lvp.so" ] || { echo "the backports package has no libvulkan_lvp.so" >&2; exit 1; }
  sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" \
    "$dir/root/usr/share/vulkan/icd.d/lvp_icd.json" > "$dir/lvp.json"
fi
lib="$dir/root/usr/lib/x86_64-linux-gnu"
echo "backports driver: $(ls "$dir"/debs/mesa-vulkan-drivers_*.deb | xargs -n1 basename)"
summary() { grep -E "g_a 5x5/2 convs together" -A 2 | tail -2; }
for r in $(seq "$rounds"); do
  echo "round $r: installed driver ($(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo '?'))"
  Tools/scripts/quiet.sh env VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json \
    "$psic" bench kernels --backend all "$@" 2>/dev/null | summary
  echo "round $r: bookworm-backports driver"
  Tools/scripts/quiet.sh env LD_LIBRARY_PATH="$lib" VK_DRIVER_FILES="$dir/lvp.json" \
    "$psic" bench kernels --backend all "$@" 2>/dev/null | summary
done
