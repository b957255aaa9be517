#!/usr/bin/env bash
# Decodes every photo of a folder with the codec itself at every level and each detail spread,
# for `realism_probe.py --decoded`: OUT/streams/NAME.psic (one encode, every level), then
# OUT/spread<K>/L<l>/NAME.png (`psic decode --levels l --seed SEED --detail-spread K`).
#
#   Tools/train/realism-codec.sh ../shared/data/kodak /tmp/spread "0 3 5" 0
#   python Tools/train/realism_probe.py --data ../shared/data/kodak --decoded /tmp/spread/spread5/L*
#
# PSIC names the binary (default .build/release/psic; build it with `swift build -c release
# --product psic`); BACKEND its --backend (default cpu); DETAILS its --details (default sampled;
# `DETAILS=calibrated` writes OUT/calibrated-spread<K>/L<l>/ instead).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 PHOTOS OUT [\"SPREADS\" (default 0)] [SEED (default 0)]" >&2
  exit 64
fi
photos=$1 out=$2 spreads=${3:-0} seed=${4:-0}
psic=${PSIC:-.build/release/psic}
backend=${BACKEND:-cpu}
details=${DETAILS:-sampled}
case $details in
  sampled) prefix=spread ;;
  calibrated) prefix=calibrated-spread ;;
  *) echo "$0: DETAILS must be sampled or calibrated (mean details draw nothing to spread)" >&2; exit 64 ;;
esac
if [ ! -x "$psic" ]; then
  echo "$0: $psic is not an executable: build it (swift build -c release --product psic) or set PSIC" >&2
  exit 1
fi
mkdir -p "$out/streams"
"$psic" encode "$photos" -o "$out/streams/" --force --backend "$backend"
levels=$("$psic" info "$(ls "$out"/streams/*.psic | head -1)" | sed -n 's/.*levels [0-9]* of \([0-9]*\).*/\1/p' | head -1)
if [ -z "$levels" ]; then
  echo "$0: could not read the stream's level count from psic info" >&2
  exit 1
fi
for k in $spreads; do
  for l in $(seq 1 "$levels"); do
    "$psic" decode "$out/streams/" -o "$out/$prefix$k/L$l/" --levels "$l" --seed "$seed" --detail-spread "$k" \
      --details "$details" --force --backend "$backend" > /dev/null
    echo "$details, spread $k, level $l: $out/$prefix$k/L$l"
  done
done
