#!/usr/bin/env bash
# The psic command line on good and bad inputs: every bad input ends with an error that names
# the file or option at fault and a plain exit status (never a crash, a hang or a silent success),
# and the good path (encode, info, truncate, decode) writes what it says.
#   Tools/scripts/cli-check.sh [PSIC_BINARY]   (default .build/debug/psic; run after a build)
set -uo pipefail
cd "$(dirname "$0")/../.."
psic=${1:-.build/debug/psic}
[ -x "$psic" ] || { echo "cli-check: no psic binary at $psic (build it: swift build --product psic)" >&2; exit 2; }
psic=$(realpath "$psic")
image=$(realpath Tests/Golden/image_64x64.png)
# Every case runs the shipped model unless the caller names another.
export PSIC_MODEL="${PSIC_MODEL:-$PWD/Models/psic-conv.safetensors}"
. Tools/scripts/lib/expect.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "hello" > text.png
: > empty.psic
: > empty.png
head -c 300 /dev/urandom > random.psic
mkdir -p folder.psic

# The good path.
expect 0 "encoded 1 image" -- "$psic" encode "$image" -o good.psic --backend cpu
expect 0 "levels 8 of 8" -- "$psic" info good.psic
expect 0 "(3 of 8 levels, format v2)" -- "$psic" truncate good.psic --levels 3 -o cut.psic
# Format version 1 on request; converting it back gives the version-2 stream byte for byte.
expect 0 "encoded 1 image" -- "$psic" encode "$image" -o v1.psic --backend cpu --format-version 1
expect 0 "format v1" -- "$psic" info v1.psic
expect 0 "(8 of 8 levels, format v2)" -- "$psic" truncate v1.psic --format-version 2 -o v1to2.psic
check "version 1 converted to 2 is the version-2 stream" 'cmp -s v1to2.psic good.psic'
expect 64 "--format-version must be in 1...2" -- "$psic" encode "$image" -o v3.psic --backend cpu --format-version 3
expect 64 "give --levels" -- "$psic" truncate good.psic -o nothing.psic
expect 0 "levels 3 of 8" -- "$psic" info cut.psic
expect 0 "decoded 1 image" -- "$psic" decode cut.psic -o cut.png --backend cpu
expect 0 "2 samples are identical" -- "$psic" decode good.psic -o s.png --samples 2 --backend cpu
expect 0 "decoded 1 image" -- "$psic" decode cut.psic -o mean.png --details mean --backend cpu
check "--details mean decodes another image than the sampled one" '! cmp -s cut.png mean.png'
expect 0 "decoded 1 image" -- "$psic" decode cut.psic -o wide.png --detail-spread 5 --backend cpu
check "--detail-spread 5 decodes another image than the trained spread" '! cmp -s cut.png wide.png'
expect 0 "decoded 1 image" -- "$psic" decode cut.psic -o same.png --detail-spread 0 --backend cpu
check "--detail-spread 0 is the default decode" 'cmp -s cut.png same.png'
expect 0 "decoded 1 image" -- "$psic" decode cut.psic -o calibrated.png --details calibrated --backend cpu
check "--details calibrated decodes another image than the sampled one" '! cmp -s cut.png calibrated.png'
for f in cut.png mean.png calibrated.png s-s0.png s-s1.png; do check "decode wrote $f" "[ -s $f ]"; done
# A size limit keeps the most levels that fit: at the 3-level cut's size, that cut.
expect 0 "levels kept for the size limit: 3" -- "$psic" encode "$image" --max-bytes "$(stat -c %s cut.psic)" -o limited.psic --backend cpu
check "--max-bytes at the 3-level size gives the 3-level cut" 'cmp -s limited.psic cut.psic'
expect 0 "levels kept for the size limit: 8" -- "$psic" encode "$image" --max-bpp 100 -o all.psic --backend cpu
expect 0 "levels kept for the size limit: 8" -- "$psic" encode "$image" --max-bpp 1e300 -o huge.psic --backend cpu
expect 0 "levels kept for 10.00 dB: 1" -- "$psic" encode "$image" --min-psnr 10 -o q10.psic --backend cpu
expect 0 "1 image stayed under 99.00 dB with every level" -- "$psic" encode "$image" --min-psnr 99 -o q99.psic --backend cpu

# Keeping no graph between images (every image prepares again) changes no byte.
mkdir -p nocache; cp "$image" nocache/a.png; cp "$image" nocache/b.png
expect 0 "encoded 2 images" -- "$psic" encode nocache -o nocache-out --backend cpu --graph-cache-mb 0
for f in a b; do check "--graph-cache-mb 0 keeps the stream of $f.png" "cmp -s nocache-out/$f.psic good.psic"; done

# Bad inputs: each names its file or option.
expect 64 "'missing.png' does not exist" -- "$psic" encode missing.png --backend cpu
expect 1 "text.png: not a readable PNG image" -- "$psic" encode text.png -o t.psic --backend cpu
expect 64 "--levels must be in 1...8" -- "$psic" encode "$image" --levels 9 --backend cpu
expect 1 "needs at least" -- "$psic" encode "$image" --max-bytes 50 -o small.psic --backend cpu
expect 64 "--max-bytes must be at least 1" -- "$psic" encode "$image" --max-bytes 0 --backend cpu
expect 64 "--max-bytes or --max-bpp, not both" -- "$psic" encode "$image" --max-bytes 900 --max-bpp 1 --backend cpu
expect 64 "--max-bpp must be a positive number" -- "$psic" encode "$image" --max-bpp nan --backend cpu
expect 64 "--rd-lambda must be a number >= 0" -- "$psic" encode "$image" --rd-lambda=-1 --backend cpu
expect 64 "--rd-lambda must be a number >= 0" -- "$psic" encode "$image" --rd-lambda nan --backend cpu
expect 0 "encoded 1 image" -- "$psic" encode "$image" --rd-lambda 40 -o rd.psic --backend cpu
expect 0 "levels 8 of 8" -- "$psic" info rd.psic
expect 0 "decoded 1" -- "$psic" decode rd.psic -o rd.png --backend cpu
expect 64 "--min-psnr chooses the levels itself" -- "$psic" encode "$image" --min-psnr 30 --levels 2 --backend cpu
expect 64 "--repeats must be at least 1" -- "$psic" bench codec "$image" --repeats 0 --backend cpu
expect 1 "choose a smaller --width/--height" -- "$psic" bench kernels --backend cpu --width 6400000 --height 6400000
expect 64 "--sizes: '0x5' is not a size" -- "$psic" bench gdn --sizes 128x128,0x5
expect 64 "--products takes a comma-separated list of auto, fused, unfused" -- "$psic" bench gdn --products auto,fast
expect 1 "empty.psic: stream is truncated in the header" -- "$psic" decode empty.psic -o e.png --backend cpu
expect 1 "empty.png: not a readable PNG image (the file is empty)" -- "$psic" encode empty.png -o e.psic --backend cpu
expect 1 "random.psic: not a PSIC stream" -- "$psic" decode random.psic -o r.png --backend cpu
expect 1 "random.psic: not a PSIC stream" -- "$psic" info random.psic good.psic
expect 1 "random.psic: not a PSIC stream" -- "$psic" truncate random.psic --levels 1 -o r2.psic
expect 64 "no .psic files among the inputs" -- "$psic" info folder.psic
expect 1 "folder.psic: cannot read it (a folder)" -- "$psic" truncate folder.psic --levels 1
expect 64 "--details mean decodes the same image for every seed" -- "$psic" decode cut.psic --details mean --samples 2 --backend cpu
expect 64 "value 'median'" -- "$psic" decode cut.psic --details median --backend cpu
expect 64 "--detail-spread must be in -16...32" -- "$psic" decode cut.psic --detail-spread 40 --backend cpu
expect 64 "--details mean samples nothing" -- "$psic" decode cut.psic --details mean --detail-spread 3 --backend cpu
expect 64 "--levels must be in 1...3 for this stream" -- "$psic" truncate cut.psic --levels 4 -o c2.psic
head -c 200 good.psic > short.psic
expect 1 "short.psic: stream is truncated in level" -- "$psic" decode short.psic -o short.png --backend cpu
expect 1 "text.png: not a valid model file" -- "$psic" decode good.psic -o m.png --backend cpu --model text.png
expect 1 "missing.psic: cannot read it" -- "$psic" truncate missing.psic --levels 1

# Outputs: nothing is replaced unless asked, nothing half-written, no two inputs on one file.
cp "$image" photo.png
expect 0 "encoded 1 image" -- "$psic" encode photo.png --backend cpu
expect 64 "photo.png' already exists; pass --force" -- "$psic" decode photo.psic --levels 1 --backend cpu
check "decode without --force keeps the source photo" 'cmp -s photo.png "$image"'
expect 0 "decoded 1 image" -- "$psic" decode photo.psic --levels 1 --backend cpu --force
check "decode --force writes photo.png" '! cmp -s photo.png "$image"'
expect 64 "photo.psic' already exists" -- "$psic" encode "$image" -o photo.psic --backend cpu
expect 64 "nofolder' does not exist; create it" -- "$psic" encode "$image" -o nofolder/x.psic --backend cpu
expect 64 "is an input" -- "$psic" encode photo.png -o photo.png --backend cpu --force
expect 64 "cut.psic' already exists; pass --force" -- "$psic" truncate good.psic --levels 2 -o cut.psic
mkdir -p clash
cp "$image" clash/a.png; cp "$image" clash/a.PNG
expect 64 "would both be written to" -- "$psic" encode clash -o clashed --backend cpu
check "a refused batch writes no stream" '[ ! -e clashed/a.psic ]'
expect 0 "encoded 1 image" -- "$psic" encode "$image" -o streams/ --backend cpu
check "-o streams/ writes into the folder streams" '[ -s streams/image_64x64.psic ]'

# A batch goes on past a bad file, names it, and fails at the end.
mkdir -p batch
cp "$image" batch/one.png; cp text.png batch/two.png; cp "$image" batch/three.png
expect 1 "1 of 3 files failed" -- "$psic" encode batch -o batch-out --backend cpu
expect 1 "two.png: not a readable PNG image" -- "$psic" encode batch -o batch-out --backend cpu --force
for f in one three; do check "the batch went on to $f.png" "[ -s batch-out/$f.psic ]"; done

# Options that would be ignored are refused.
expect 64 "--device 0 chooses a Vulkan device" -- "$psic" encode "$image" -o d.psic --backend cpu --device 0
expect 64 "--jobs must be at least 1" -- "$psic" encode "$image" -o j.psic --backend cpu -j 0
expect 64 "--graph-cache-mb must be between 0 and" -- "$psic" decode good.psic -o g.png --graph-cache-mb=-1 --backend cpu
expect 64 "--levels must be in 1...8 for this model" -- "$psic" decode good.psic -o l.png --levels 9 --backend cpu

# The shipped model is found from the executable when psic is run through PATH.
out=$(cd "$work" && env -u PSIC_MODEL PATH="$(dirname "$psic"):$PATH" timeout 60 psic encode "$image" -o path.psic --backend cpu 2>&1)
if [ $? -ne 0 ]; then echo "FAIL: psic on PATH did not find its model:"; echo "$out" | sed 's/^/    /'; failures=$((failures + 1)); else echo "ok:   psic on PATH finds its model"; fi

verdict cli-check
