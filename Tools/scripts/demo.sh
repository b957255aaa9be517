#!/usr/bin/env bash
# Installs dependencies, builds psic (release) and shows the codec on the sample image with the
# shipped model: encode all levels, inspect, decode at full level, cut the stream after level 2
# and decode three different synonymous samples of it. Results in out/demo/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
Tools/scripts/install-debian-deps.sh
swift build -c release --product psic
PSIC="$(swift build -c release --show-bin-path)/psic"
IMAGE="${1:-Tests/Golden/image_128x96.png}"
mkdir -p out/demo
"$PSIC" encode "$IMAGE" -o out/demo/sample.psic --force
"$PSIC" info out/demo/sample.psic
"$PSIC" decode out/demo/sample.psic -o out/demo/sample-full.png --force
"$PSIC" truncate out/demo/sample.psic --levels 2 -o out/demo/sample-level2.psic --force
"$PSIC" decode out/demo/sample-level2.psic --samples 3 --seed 1 -o out/demo/sample-level2.png --force
ls -l out/demo
