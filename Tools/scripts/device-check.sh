#!/usr/bin/env bash
# The checks to run on a lent GPU machine, in one call of the device tool (see
# Tools/scripts/device-bundle.sh for how to send it). Unpacks .device/psic-bundle.tar.xz, finds
# the NVIDIA Vulkan driver, and runs each step under its own time limit, writing every output
# to $OUT (or /tmp/psic-device-out) and a summary of exit codes to summary.txt:
#   devices     nvidia-smi -L and `psic devices`
#   kernels     `psic bench kernels --backend all` on the GPU: per-layer GFLOP/s from GPU
#               timestamps beside the CPU backend, and each output's agreement with the CPU's
#               (the step fails if an integer layer differs); table and JSON
#   routes      the GPU's 5x5/2 layers as Winograd and direct, side by side
#   crossdecode the sample image encoded on the GPU and on the CPU, each stream decoded on
#               both; the decoded images compared (integer entropy model: same latents, so
#               the images differ only by g_s's float rounding)
#   syncval     the codec on the GPU under the Khronos validation layer's synchronization
#               checks (a missing barrier shows on a real GPU, not on lavapipe); fails on any error
#   codec       `psic bench codec --backend all` on the sample image and a 3072x2048 one
# Everything in one command, well inside the 10-minute limit of a call (~3-5 minutes).
# PSIC_DEVICE_CHECK_STEPS="kernels codec" runs only those steps; PSIC_DEVICE_CHECK_DEVICE picks
# another device than the first whose name contains NVIDIA.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/psic-device-out}
mkdir -p "$out"
root=/tmp/psic-device
rm -rf "$root" && mkdir -p "$root"
tar -C "$root" -xJf .device/psic-bundle.tar.xz || { echo "no .device/psic-bundle.tar.xz: run device-bundle.sh and carry .device" | tee "$out/summary.txt"; exit 1; }
export LD_LIBRARY_PATH="$root/psic/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The driver's own libraries (the ICD file names them without a path).
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  if [ -d "$d" ]; then LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; fi
done
psic="$root/psic/psic"
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
done
device=${PSIC_DEVICE_CHECK_DEVICE:-NVIDIA}
work=$(mktemp -d)
sample=Tests/Golden/image_128x96.png

step() {  # step NAME SECONDS COMMAND... : output to $out/NAME.txt, exit code to summary.txt
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  printf '%-12s rc=%-3s %4ss\n' "$name" "$rc" $((SECONDS - t0)) | tee -a "$out/summary.txt"
  return 0
}

devices() {
  nvidia-smi -L
  ldd "$psic" | grep -v "$root"  # what the bundle leaves to the system: glibc, libstdc++, libz
  "$psic" devices
}

kernels() {
  "$psic" bench kernels --backend all --device "$device" --repeats 10 --json > "$out/kernels.json" 2> "$out/kernels-progress.txt" &&
    python3 Tools/scripts/device_summary.py kernels "$out/kernels.json"
}

crossdecode() {
  set -e
  "$psic" encode "$sample" --backend vulkan --device "$device" --force -o "$work/gpu.psic"
  "$psic" encode "$sample" --backend cpu --force -o "$work/cpu.psic"
  if cmp -s "$work/gpu.psic" "$work/cpu.psic"; then echo "streams: identical"; else echo "streams differ (g_a's float rounding can move a latent)"; fi
  for s in gpu cpu; do
    "$psic" decode "$work/$s.psic" --backend vulkan --device "$device" --force -o "$work/$s-on-gpu.png"
    "$psic" decode "$work/$s.psic" --backend cpu --force -o "$work/$s-on-cpu.png"
  done
  python3 Tools/scripts/device_summary.py decodes "$work"
}

codec() {
  "$psic" bench codec "$sample" --backend all --device "$device" --repeats 5
  "$psic" bench codec --backend all --device "$device" --repeats 5
  python3 -c "from PIL import Image; Image.open('$sample').convert('RGB').resize((3072, 2048), Image.BICUBIC).save('$work/large.png')" &&
    "$psic" bench codec "$work/large.png" --backend all --device "$device" --repeats 3
}

syncval() {  # the codec's whole graphs on the GPU under the validation layer's synchronization checks
  [ -f "$root/psic/layers/VkLayer_khronos_validation.json" ] || { echo "no validation layer in the bundle"; return 2; }
  local log="$out/syncval-log.txt"
  VK_LAYER_PATH="$root/psic/layers" VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation \
  VK_LAYER_ENABLES=VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT bash -c '
    "$psic" bench codec "$sample" --backend vulkan --device "$device" --repeats 1 &&
    "$psic" encode "$sample" --backend vulkan --device "$device" --force -o "$work/v.psic" &&
    "$psic" decode "$work/v.psic" --backend vulkan --device "$device" --samples 2 --force -o "$work/v.png"' > "$log" 2>&1
  local rc=$? errors
  errors=$(grep -c "Validation Error" "$log")
  grep "Validation Error" "$log" | head -5
  echo "exit $rc, $errors validation errors"
  [ "$rc" -eq 0 ] && [ "$errors" -eq 0 ]
}

export psic root out work device sample
export -f devices kernels crossdecode codec syncval
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset} device=$device" | tee "$out/summary.txt"
steps=" ${PSIC_DEVICE_CHECK_STEPS:-devices kernels routes crossdecode syncval codec} "  # a subset re-runs only those
want() { [[ $steps == *" $1 "* ]]; }
want devices && step devices 60 bash -c devices
want kernels && step kernels 240 bash -c kernels
want routes && step routes 180 "$psic" bench kernels --backend vulkan --device "$device" --repeats 10 --vulkan-convolutions both
want crossdecode && step crossdecode 120 bash -c crossdecode
want syncval && step syncval 120 bash -c syncval
want codec && step codec 240 bash -c codec
cat "$out/summary.txt"
