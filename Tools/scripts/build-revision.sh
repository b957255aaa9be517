#!/usr/bin/env bash
# Builds the release `psic` of a git revision, apart from the working tree, and prints the
# executable's path: the "before" side of a side-by-side measurement (compare-psic.sh --a-rev).
#
# Usage: Tools/scripts/build-revision.sh REV [--without COMMIT] [--product NAME]
#   REV        any revision git names (a commit, a tag, "HEAD~3")
#   --without  build REV with COMMIT's change to Sources/ undone (a reverse patch): one change
#              measured in the context of later ones (e.g. options it did not have yet)
#   --product  the SwiftPM product to build (default psic)
# The revision's files go to .build/revisions/SHA[-without-SHA]/ (git archive: committed files
# only) and are built there with their own build folder; a second call reuses the build. Each
# takes about 0.5 GB (`rm -rf .build/revisions` frees them) and 5–6 minutes on 2 cores.
# Progress goes to stderr; stdout is the executable's path alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
rev="" product=psic without=""
while [ $# -gt 0 ]; do
  case "$1" in
    --product) product="$2"; shift 2 ;;
    --without) without="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    -*) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [ -z "$rev" ] || { echo "error: give one revision (see --help)" >&2; exit 2; }; rev="$1"; shift ;;
  esac
done
[ -n "$rev" ] || { echo "error: give a revision, e.g. Tools/scripts/build-revision.sh HEAD~3" >&2; exit 2; }
sha=$(git rev-parse --verify --quiet "$rev^{commit}") \
  || { echo "error: git knows no commit '$rev' (git log --oneline lists them)" >&2; exit 2; }
dir=.build/revisions/$sha
if [ -n "$without" ]; then
  undo=$(git rev-parse --verify --quiet "$without^{commit}") \
    || { echo "error: git knows no commit '$without' (git log --oneline lists them)" >&2; exit 2; }
  dir+="-without-$undo"
fi
exe="$dir/.build/release/$product"
if [ ! -f "$dir/Package.swift" ]; then
  echo "build-revision: extracting $rev ($sha) into $dir" >&2
  rm -rf "$dir.partial" && mkdir -p "$dir.partial"
  git archive "$sha" | tar -x -C "$dir.partial"
  if [ -n "$without" ]; then
    echo "build-revision: undoing $without's change to Sources/" >&2
    git diff "$undo^" "$undo" -- Sources | (cd "$dir.partial" && patch -R -p1 --quiet --no-backup-if-mismatch >&2) \
      || { rm -rf "$dir.partial"; echo "error: $without's change does not undo cleanly at $rev" >&2; exit 1; }
  fi
  mv "$dir.partial" "$dir"
fi
export PATH="$PATH:/opt/swift/usr/bin"
echo "build-revision: swift build -c release --product $product in $dir" >&2
(cd "$dir" && swift build -c release --product "$product" >&2) \
  || { echo "error: building $product at $rev failed (output above)" >&2; exit 1; }
[ -x "$exe" ] || { echo "error: the build left no $exe" >&2; exit 1; }
realpath -- "$exe"
