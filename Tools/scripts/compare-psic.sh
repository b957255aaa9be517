#!/usr/bin/env bash
# Runs one psic command with two executables, alternated, and prints each run's wall time and
# peak memory, then the ratio of the medians: a side-by-side measurement of one change.
#
# Usage: Tools/scripts/compare-psic.sh --a PSIC|--a-rev REV --b PSIC|--b-rev REV [--runs N]
#                                      [--a-env NAME=VALUE]... [--b-env NAME=VALUE]...
#                                      [--limit-mib N] -- ARGS...
#   --a, --b     the two executables (e.g. a copy of an older build, and .build/release/psic)
#   --a-rev, --b-rev  instead, the release psic of a git revision, built apart by
#                Tools/scripts/build-revision.sh (minutes the first time, then reused); a
#                revision written "REV-COMMIT" is REV with COMMIT's change to Sources/ undone
#                (a name that is itself a revision, like a tag "v1-rc", is taken whole;
#                otherwise it splits at the last "-")
#   --a-env, --b-env  an environment variable for that side's runs only (repeatable); with
#                --a and --b the same executable, this compares two settings of one build
#   --runs       runs of each (default 3), in the order a b a b ...
#   --limit-mib  run each inside a memory control group with this limit
#                (Tools/scripts/cgroup-run.sh: root and cgroup v1); the peak is then the group's
#   ARGS         the psic arguments; "{out}" in them is replaced by a fresh empty folder per run
# Example (the MADV_POPULATE_WRITE change of commit 61b3764 measured at 8d97943, which added
# --graph-cache-mb to encode; docs/design.md):
#   Tools/scripts/compare-psic.sh --a-rev 8d97943-61b3764 --b-rev 8d97943 \
#            -- encode ../shared/data/kodak -o {out} --backend cpu --graph-cache-mb 64
# and oneDNN capped at AVX2 against its own choice (docs/design.md, session 43):
#   Tools/scripts/compare-psic.sh --a .build/release/psic --b .build/release/psic \
#            --b-env ONEDNN_MAX_CPU_ISA=AVX2 --runs 5 -- decode STREAM.psic -o {out} --backend cpu
set -euo pipefail
start=$PWD
cd "$(dirname "$0")/../.."
. Tools/scripts/lib/gnu-time.sh
a="" b="" runs=3 limit=""
a_env=() b_env=()
# "REV" or "REV-COMMIT" (REV without COMMIT's change) to an executable.
build_rev() {
  if [[ "$1" == *-* ]] && ! git rev-parse -q --verify "$1^{commit}" >/dev/null; then
    Tools/scripts/build-revision.sh "${1%-*}" --without "${1##*-}"
  else Tools/scripts/build-revision.sh "$1"; fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --a) a=$(cd "$start" && realpath -- "$2"); shift 2 ;;
    --b) b=$(cd "$start" && realpath -- "$2"); shift 2 ;;
    --a-rev) a=$(build_rev "$2") || exit 2; shift 2 ;;
    --b-rev) b=$(build_rev "$2") || exit 2; shift 2 ;;
    --a-env|--b-env)
      [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "error: $1 wants NAME=VALUE, not '$2'" >&2; exit 2; }
      if [ "$1" = --a-env ]; then a_env+=("$2"); else b_env+=("$2"); fi; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --limit-mib) limit="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$a" ] && [ -x "$b" ] || { echo "error: give two executables with --a/--a-rev and --b/--b-rev (see --help)" >&2; exit 2; }
[ $# -gt 0 ] || { echo "error: give the psic arguments after -- (see --help)" >&2; exit 2; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "error: --runs wants a positive count" >&2; exit 2; }
gnu_time_require

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
declare -A walls
for ((r = 1; r <= runs; r++)); do
  for which in a b; do
    exe=${!which}
    envs_name="${which}_env[@]"; envs=("${!envs_name}")
    out="$dir/$which-$r"; mkdir -p "$out"
    args=()
    for arg in "$@"; do args+=("${arg//\{out\}/$out}"); done
    log="$dir/time"
    gnu_time_run "$log" "$limit" env "${envs[@]}" "$exe" "${args[@]}" > "$dir/stdout" 2>&1 \
      || { echo "error: run $r of $which failed:"; tail -5 "$dir/stdout"; exit 1; } >&2
    wall=$(gnu_time_wall "$log")
    peak=$(gnu_time_peak_mib "$log")
    group=$(grep -o 'peak [0-9]* MiB; OOM kills [0-9a-z]*' "$dir/stdout" | sed 's/^/group /' || true)
    echo "$which run $r: $wall s, peak RSS $peak MiB${group:+, $group}"
    walls[$which]+="$wall "
  done
done
median() { tr ' ' '\n' <<< "$1" | grep . | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ma=$(median "${walls[a]}") mb=$(median "${walls[b]}")
# GNU time counts hundredths of a second: a command faster than that has no ratio to give.
awk -v a="$ma" -v b="$mb" 'BEGIN {printf "median a %.2f s, b %.2f s: ", a, b
  if (a > 0) printf "b/a = %.3f\n", b / a
  else print "no b/a (a ran under the 0.01 s that GNU time resolves; give it more work)"}'
echo "a = ${a_env[*]}${a_env:+ }$a"
echo "b = ${b_env[*]}${b_env:+ }$b"
