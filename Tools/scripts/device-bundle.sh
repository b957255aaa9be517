#!/usr/bin/env bash
# Packs the release psic binary and every shared library it needs beyond a plain glibc system
# (the Swift runtime, OpenBLAS, oneDNN, libpng, the Vulkan loader) into .device/psic-bundle.tar.xz,
# for a machine that has none of them: the GPU machine a session may be lent, which has an
# NVIDIA driver but no Swift, no Debian packages and no network. Tools/scripts/device-check.sh
# unpacks it there and runs the checks. A session with such a machine runs, here:
#   swift build -c release --product psic && Tools/scripts/device-bundle.sh
# then the device tool's `run` with carry [".device"] and the command
#   bash Tools/scripts/device-check.sh
# (.device is ignored by git; the bundle is ~35 MB of the 64 MiB a run may carry, the tree ~11 MB.)
set -euo pipefail
cd "$(dirname "$0")/../.."
psic=.build/release/psic
[ -x "$psic" ] || { echo "no $psic: run 'swift build -c release --product psic' first" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/psic/lib" .device
# Everything ldd resolves except the C runtime every Linux system has.
system='^(libc|libm|libdl|libpthread|librt|ld-linux-x86-64|libstdc\+\+|libgcc_s|libz)\.so'
ldd "$psic" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | while read -r lib; do
  name=$(basename "$lib")
  [[ $name =~ $system ]] && continue
  cp -L "$lib" "$stage/psic/lib/$name"
done
cp "$psic" "$stage/psic/psic"
# The Khronos validation layer, for the synchronization check on the GPU (its JSON names the
# library relative to itself).
layer=/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json
if [ -f "$layer" ]; then
  mkdir -p "$stage/psic/layers"
  sed 's#"library_path": *"[^"]*"#"library_path": "./libVkLayer_khronos_validation.so"#' "$layer" > "$stage/psic/layers/$(basename "$layer")"
  cp -L /usr/lib/x86_64-linux-gnu/libVkLayer_khronos_validation.so "$stage/psic/layers/"
else
  echo "note: no validation layer here (apt-get install vulkan-validationlayers): the bundle skips the sync check" >&2
fi
strip --strip-unneeded "$stage/psic/psic" "$stage/psic/lib/"*.so* "$stage/psic/layers/"*.so 2>/dev/null || true
tar -C "$stage" -cf - psic | xz -T2 -6 > .device/psic-bundle.tar.xz
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
echo "wrote .device/psic-bundle.tar.xz ($(du -h .device/psic-bundle.tar.xz | cut -f1); $(ls "$stage/psic/lib" | wc -l) libraries)"
