#!/usr/bin/env bash
# Runs a command inside a fresh memory control group with a limit, as a container would, and
# prints its exit status, the group's peak memory and whether the OOM killer struck.
# Usage (as root, cgroup v1 with the memory controller mounted):
#   LIMIT=$((2<<30)) Tools/scripts/cgroup-run.sh .build/release/psic encode big.png --backend cpu -o big.psic
set -uo pipefail
: "${LIMIT:?set LIMIT to the memory limit in bytes}"
root=/sys/fs/cgroup/memory
if [ ! -w "$root" ]; then
  echo "error: needs root and cgroup v1's memory controller at $root" >&2
  exit 2
fi
group="$root/psic-limit-$$"
mkdir "$group"
trap 'rmdir "$group" 2>/dev/null' EXIT
echo "$LIMIT" > "$group/memory.limit_in_bytes"
echo 0 > "$group/memory.swappiness" 2>/dev/null || true
bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$group" "$@"
status=$?
used=$(cat "$group/memory.max_usage_in_bytes")
peak=$((used / 1048576))
kills=$(awk '/^oom_kill /{print $2}' "$group/memory.oom_control")
echo "exit $status; peak $peak MiB; OOM kills ${kills:-unknown}"
exit $status
