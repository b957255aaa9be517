#!/usr/bin/env bash
# One command for the PSIC evaluation (Tools/eval/README in docs/results.md):
#   Tools/eval/run.sh [evaluate.py options]      e.g. --limit 3, --codecs psic,jpeg, --skip-speed
# Installs the Debian codec/metric tools when missing, uses $PSIC_EVAL_VENV (default: an existing
# /work/venv-train, else creates .venv-eval) with Tools/eval/requirements.txt, builds nothing:
# the release psic binary must exist (.build/release/psic; `swift build -c release`).
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
for t in cjpeg:libjpeg-turbo-progs cwebp:webp avifenc:libavif-bin cjxl:libjxl-tools butteraugli:butteraugli; do
  command -v "${t%%:*}" >/dev/null || need+=("${t##*:}")
done
if ((${#need[@]})); then
  echo "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

VENV="${PSIC_EVAL_VENV:-}"
if [ -z "$VENV" ]; then
  if [ -x /work/venv-train/bin/python ]; then VENV=/work/venv-train; else VENV=.venv-eval; fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r Tools/train/requirements.txt
fi
"$VENV/bin/pip" install -q -r Tools/eval/requirements.txt

[ -x .build/release/psic ] || { echo "no .build/release/psic: run swift build -c release first" >&2; exit 1; }
exec "$VENV/bin/python" Tools/eval/evaluate.py "$@"
