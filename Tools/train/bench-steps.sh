#!/usr/bin/env bash
# Training-step time of two train.py option sets, runs alternated, each the same seeded steps
# (crops and levels) from one checkpoint. By default freed memory kept for reuse or not
# (psic_train/allocator.py, RESULTS.md session 11); session 38 compared the consistency term's
# frequency with "--consistency-every 1" "--consistency-every 4":
#   Tools/train/bench-steps.sh CHECKPOINT [STEPS] [PAIRS] [OPTIONS_A OPTIONS_B]
# Pause other training first (Tools/scripts/quiet.sh does, when wrapping this script).
set -euo pipefail
cd "$(dirname "$0")/../.."
ckpt=${1:?usage: $0 CHECKPOINT [STEPS] [PAIRS] [OPTIONS_A OPTIONS_B]}
steps=${2:-40}
pairs=${3:-2}
mode_a=${4:---no-keep-freed-memory}
mode_b=${5:---keep-freed-memory}
PY=${PYTHON:-python}
start=$("$PY" -c "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=False)['step'])" "$ckpt")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq "$pairs"); do
  for mode in "$mode_a" "$mode_b"; do
    echo "== $mode (pair $i)"
    rm -rf "$out/run"
    OMP_WAIT_POLICY=PASSIVE "$PY" -W ignore Tools/train/train.py --init "$ckpt" --out "$out/run" --threads 2 --ema 0.999 \
      --steps $((start + steps)) --log-every 10 --eval-every 1000000000 $mode 2>&1 \
      | grep -E -o "freed memory.*|step +[0-9]+/[0-9]+.*s/step" | sed 's/| loss.*|//'
  done
done
