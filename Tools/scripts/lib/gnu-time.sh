# Sourced by the benchmark scripts (compare-psic.sh, large-image-check.sh): runs a command under
# GNU time, optionally inside a memory control group, and reads back what GNU time wrote.
# Callers run from the repository root.

# gnu_time_require: exits with an error that says what to install when GNU time is missing.
gnu_time_require() {
  [ -x /usr/bin/time ] || { echo "error: GNU time missing: apt-get install time" >&2; exit 2; }
}

# gnu_time_run LOG LIMIT_MIB COMMAND...: runs COMMAND under `time -v` writing to LOG; with a
# non-empty LIMIT_MIB inside a memory group of that size (Tools/scripts/cgroup-run.sh: root and
# cgroup v1). Returns COMMAND's status.
gnu_time_run() {
  local log="$1" limit="$2"; shift 2
  if [ -n "$limit" ]; then
    LIMIT=$((limit << 20)) /usr/bin/time -v -o "$log" Tools/scripts/cgroup-run.sh "$@"
  else
    /usr/bin/time -v -o "$log" "$@"
  fi
}

# gnu_time_wall LOG: elapsed wall-clock seconds ("1:02.5" and "1:02:03" forms both read).
gnu_time_wall() {
  awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$1"
}

# gnu_time_peak_mib LOG: maximum resident set size in MiB (of the process GNU time ran).
gnu_time_peak_mib() {
  awk -F': ' '/Maximum resident set size/{printf "%d", $2/1024}' "$1"
}
