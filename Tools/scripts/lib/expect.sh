# Sourced by the check scripts (cli-check.sh, compare-psic-check.sh): one "ok:" or "FAIL:" line per
# case, a count of the failures, and the closing verdict.

failures=0

# check NAME CONDITION: evaluates CONDITION (a shell expression, so it sees the caller's variables)
# and reports NAME; returns 1 when it fails.
check() {
  if eval "$2"; then echo "ok:   $1"; else echo "FAIL: $1"; failures=$((failures + 1)); return 1; fi
}

# expect STATUS TEXT -- COMMAND...: runs COMMAND (60 s at most) and checks its exit status and that
# TEXT appears in what it printed; a failure shows the output.
expect() {
  local status=$1 text=$2
  shift 3
  local out rc
  out=$(timeout 60 "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$status" ] || [[ "$out" != *"$text"* ]]; then
    echo "FAIL: $* -> exit $rc (expected $status), output:"
    echo "$out" | sed 's/^/    /'
    echo "    (expected to contain: $text)"
    failures=$((failures + 1))
  else
    echo "ok:   $* -> exit $rc"
  fi
}

# verdict NAME: ends the script, with status 1 when any case failed.
verdict() {
  if [ "$failures" -ne 0 ]; then
    echo "$1: $failures case(s) failed" >&2
    exit 1
  fi
  echo "$1: all cases passed"
}
