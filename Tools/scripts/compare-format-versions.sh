#!/usr/bin/env bash
# Rate of each stream format version on a folder of images, side by side: `psic bench levels`
# with --format-version 1 and 2 (the same encode and decodes; only the container differs), then
# the PSNR BD-rate of version 2 against version 1 (Tools/train/figures.py levels).
#
#   Tools/scripts/compare-format-versions.sh [IMAGES] [OUT]   (defaults ../shared/data/kodak, out/format-versions)
#
# Needs a release build (swift build -c release --product psic) and Python with numpy (the
# training venv has it): PYTHON=/work/venv-train/bin/python to choose one.
set -euo pipefail
images=${1:-../shared/data/kodak}
out=${2:-out/format-versions}
psic=${PSIC:-.build/release/psic}
python=${PYTHON:-python3}
[[ -x $psic ]] || { echo "no $psic: run swift build -c release --product psic first" >&2; exit 1; }
mkdir -p "$out"
for v in 1 2; do
    "$psic" bench levels "$images" --backend cpu --format-version "$v" --json > "$out/levels-v$v.json"
done
"$python" Tools/train/figures.py levels "$out/levels-v1.json" "$out/levels-v2.json"
