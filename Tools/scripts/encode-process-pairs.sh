#!/usr/bin/env bash
# Wall time of one-image `psic encode` processes (model load, weight packing, encode), two
# binaries interleaved, so start-up changes are measured side by side in one run:
#   Tools/scripts/quiet.sh Tools/scripts/encode-process-pairs.sh OLD_PSIC NEW_PSIC IMAGE.png [REPEATS] [BACKENDS]
# Prints one line per process: backend, binary, seconds, stream bytes. BACKENDS defaults to
# "vulkan cpu"; lavapipe is pinned unless VK_DRIVER_FILES is set.
set -euo pipefail
if (($# < 3)); then
  echo "usage: $0 OLD_PSIC NEW_PSIC IMAGE.png [REPEATS=3] [BACKENDS='vulkan cpu']" >&2
  exit 2
fi
old=$1 new=$2 img=$3 repeats=${4:-3} backends=${5:-vulkan cpu}
for bin in "$old" "$new"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }; done
[ -f "$img" ] || { echo "no such image: $img" >&2; exit 2; }
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/share/vulkan/icd.d/lvp_icd.x86_64.json}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for backend in $backends; do
  for ((rep = 1; rep <= repeats; rep++)); do
    for bin in "$old" "$new"; do
      s=$(date +%s.%N)
      "$bin" encode "$img" -o "$out/s.psic" --force --backend "$backend" > /dev/null
      e=$(date +%s.%N)
      printf '%s %s %.3f s %s bytes\n' "$backend" "$bin" "$(echo "$e - $s" | bc)" "$(stat -c %s "$out/s.psic")"
    done
  done
done
