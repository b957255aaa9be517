#!/usr/bin/env bash
# Encodes and decodes one large photo with the release `psic` and reports what docs/design.md
# quotes for large images: wall time, peak memory, stream size and the decode's PSNR.
#
# Usage: Tools/scripts/large-image-check.sh [--backend cpu|vulkan] [--size WxH] [--image PNG]
#                                           [--limit-mib N] [--keep DIR] [--psic PATH]
#                                           [--tile-mb N] [--graph-cache-mb N]
#   --size     the test image's size (default 6144x5632, 34.6 MP), made once with Pillow from
#              --image (default ../shared/data/train/bsds500_test_100007.png), resized bicubic
#   --limit-mib  run each step inside a memory control group with this limit
#              (Tools/scripts/cgroup-run.sh: root and cgroup v1), as a container would
#   --keep     where the image, stream and decode are written (default a temporary folder)
#   --psic     the psic executable (default .build/release/psic; another build to compare)
#   --tile-mb, --graph-cache-mb  passed to psic encode and decode (default psic's own)
# Needs: `swift build -c release --product psic`, GNU time, Python with Pillow and NumPy
# (PYTHON, default /work/venv-train/bin/python when present, else python3).
set -euo pipefail
start=$PWD
cd "$(dirname "$0")/../.."
. Tools/scripts/lib/gnu-time.sh
backend=cpu size=6144x5632 image=../shared/data/train/bsds500_test_100007.png limit="" keep=""
psic=.build/release/psic extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --image) image="$2"; shift 2 ;;
    --limit-mib) limit="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --psic) psic=$(cd "$start" && realpath -- "$2"); shift 2 ;;
    --tile-mb|--graph-cache-mb) extra+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$psic" ] || { echo "error: $psic missing: run 'swift build -c release --product psic' first" >&2; exit 2; }
gnu_time_require
if [ -z "${PYTHON:-}" ]; then
  if [ -x /work/venv-train/bin/python ]; then PYTHON=/work/venv-train/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import PIL, numpy' 2>/dev/null || { echo "error: $PYTHON lacks Pillow or NumPy (pip install pillow numpy)" >&2; exit 2; }
[[ "$size" =~ ^[0-9]+x[0-9]+$ ]] || { echo "error: --size wants WxH, e.g. 6144x5632" >&2; exit 2; }
[ -f "$image" ] || { echo "error: no source image $image (give --image)" >&2; exit 2; }

dir="${keep:-$(mktemp -d)}"
mkdir -p "$dir"
[ -n "$keep" ] || trap 'rm -rf "$dir"' EXIT
big="$dir/large-$size.png"
if [ ! -f "$big" ]; then
  "$PYTHON" - "$image" "$big" "${size%x*}" "${size#*x}" <<'EOF'
import sys
from PIL import Image
src, dst, w, h = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
Image.open(src).convert("RGB").resize((w, h), Image.BICUBIC).save(dst)
EOF
fi

# Runs "$@" under GNU time (and the memory group when asked); prints "<label>: wall s, peak MiB".
measure() {
  local label="$1"; shift
  local log="$dir/$label.time"
  gnu_time_run "$log" "$limit" "$@"
  local wall peak
  wall=$(gnu_time_wall "$log")
  peak=$(gnu_time_peak_mib "$log")
  echo "$label: ${wall} s wall, peak RSS ${peak} MiB (psic's own process when not in a group)"
}

echo "image $big ($size), backend $backend${limit:+, memory group $limit MiB}, $psic ${extra[*]}"
measure encode "$psic" encode "$big" --backend "$backend" "${extra[@]}" -o "$dir/large.psic" --force
measure decode "$psic" decode "$dir/large.psic" --backend "$backend" "${extra[@]}" -o "$dir/large-decoded.png" --force
"$PYTHON" - "$big" "$dir/large-decoded.png" "$dir/large.psic" <<'EOF'
import os, sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB"), dtype=np.float64)
b = np.asarray(Image.open(sys.argv[2]).convert("RGB"), dtype=np.float64)
mse = ((a - b) ** 2).mean()
bits = os.path.getsize(sys.argv[3]) * 8
print(f"stream {bits // 8} bytes, {bits / (a.shape[0] * a.shape[1]):.4f} bpp; decode PSNR {10 * np.log10(255 ** 2 / mse):.2f} dB")
EOF
