#!/usr/bin/env bash
# Training-step time with and without freed memory kept for reuse (psic_train/allocator.py),
# runs alternated, each the same seeded steps from one checkpoint (RESULTS.md, session 11):
#   Tools/train/bench-steps.sh CHECKPOINT [STEPS] [PAIRS]
# Pause other training first (Tools/scripts/quiet.sh does, when wrapping this script).
set -euo pipefail
cd "$(dirname "$0")/../.."
ckpt=${1:?usage: $0 CHECKPOINT [STEPS] [PAIRS]}
steps=${2:-40}
pairs=${3:-2}
PY=${PYTHON:-python}
start=$("$PY" -c "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=False)['step'])" "$ckpt")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq "$pairs"); do
  for mode in --no-keep-freed-memory --keep-freed-memory; do
    echo "== $mode (pair $i)"
    rm -rf "$out/run"
    OMP_WAIT_POLICY=PASSIVE "$PY" -W ignore Tools/train/train.py --init "$ckpt" --out "$out/run" --threads 2 --ema 0.999 \
      --steps $((start + steps)) --log-every 10 --eval-every 1000000000 "$mode" 2>&1 \
      | grep -E -o "freed memory.*|step +[0-9]+/[0-9]+.*s/step" | sed 's/| loss.*|//'
  done
done
