#!/usr/bin/env bash
# Trains PSIC on a lent GPU machine for MINUTES and exports the result, from the repository root:
#
#   here:   python Tools/train/gpu_pack.py          (once: .gpu/ with the wheels and photos)
#   there:  the device tool's run with carry [".gpu"], timeout_s about 60·MINUTES + 150, and
#           bash Tools/train/gpu-train.sh MINUTES [train.py options]
#   here:   the files come back under the run's files_at: psic-conv.safetensors, its report and
#           golden vectors, log.jsonl, train.log; then
#           python Tools/train/export.py --evaluate FILES/psic-conv.safetensors --kodak ../shared/data/kodak \
#               --kodak-seeds 0,1,2 --report /tmp/kodak.json
#           and ship.py after merging the "kodak" table into FILES' report (figures.py exports reads it).
#
# Training starts from the shipped model (train.py --init Models/psic-conv.safetensors, its recipe)
# on .gpu/train; train.py options after MINUTES override it (e.g. --batch 16 --lr 3e-5). The export
# skips Kodak (not carried) and writes into $OUT (8 files at most come back, 16 MiB each: the model
# file is 8.1 MiB, a checkpoint with its optimiser 50 MB would not). DEVICE=cpu runs it on a CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:?usage: gpu-train.sh MINUTES [train.py options]}
shift
out=${OUT:-/tmp/psic-gpu-out}
run=/tmp/psic-gpu-run
mkdir -p "$out"
[ -d .gpu/train ] || { echo "no .gpu/train: run python Tools/train/gpu_pack.py here and carry .gpu" >&2; exit 1; }
if ! python3 -c "import compressai, pytorch_msssim" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/psic-site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/psic-site${PYTHONPATH:+:$PYTHONPATH}
fi
hours=$(python3 -c "print($minutes / 60)")
export PYTHONUNBUFFERED=1
rm -rf "$run"
python3 -W ignore Tools/train/train.py --device "${DEVICE:-cuda}" --data .gpu/train --init Models/psic-conv.safetensors \
  --out "$run" --hours "$hours" --log-every 50 --warmup-steps 300 "$@" 2>&1 | tee "$out/train.log"
cp "$run/log.jsonl" "$out/"
mkdir -p "$out/golden"
cp Tests/Golden/*.png "$out/golden/"
python3 -W ignore Tools/train/export.py --checkpoint "$run/last.pt" --out "$out/psic-conv.safetensors" --fp16 \
  --data .gpu/train --golden "$out/golden" --threads "$(nproc)" 2>&1 | tee -a "$out/train.log"
rm "$out/golden/"*.png
