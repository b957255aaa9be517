#!/usr/bin/env bash
# Runs a command (a benchmark) with a background training run paused, and resumes the training
# afterwards, also when the command fails or is interrupted. On a 2-core machine a training
# process running alongside halves and scatters every timing.
#   Tools/scripts/quiet.sh .build/release/psic bench kernels --backend all
set -euo pipefail
if (($# == 0)); then
  echo "usage: $0 COMMAND [ARGS...]   (pauses Tools/train/train.py processes while COMMAND runs)" >&2
  exit 2
fi
# Only Python processes: this script's own command line (and the subshell running pgrep) may
# name train.py too, when the command it wraps does; stopping those would hang it.
pids=""
for pid in $(pgrep -f "Tools/train/train.py" || true); do
  case "$(cat /proc/"$pid"/comm 2>/dev/null)" in python*) pids="$pids $pid" ;; esac
done
pids=${pids# }
resume() { if [ -n "$pids" ]; then kill -CONT $pids 2>/dev/null || true; fi; }
trap resume EXIT
if [ -n "$pids" ]; then
  echo "pausing training ($(echo $pids | tr '\n' ' '))" >&2
  kill -STOP $pids
  sleep 1
fi
"$@"
