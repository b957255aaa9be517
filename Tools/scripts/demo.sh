#!/usr/bin/env bash
# Installs dependencies, builds psic (release) and encodes + decodes the sample image with the
# shipped model at every level, writing results to out/demo/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
Tools/scripts/install-debian-deps.sh
swift build -c release --product psic
PSIC=.build/release/psic
mkdir -p out/demo
"$PSIC" encode Tests/Golden/sample.png -o out/demo/sample.psic
"$PSIC" info out/demo/sample.psic
for l in $("$PSIC" info out/demo/sample.psic --levels-only); do
  "$PSIC" decode out/demo/sample.psic --levels "$l" -o "out/demo/sample-level$l.png"
done
"$PSIC" decode out/demo/sample.psic --levels 2 --samples 3 --seed 1 -o out/demo/sample-level2-sample.png
ls -l out/demo
