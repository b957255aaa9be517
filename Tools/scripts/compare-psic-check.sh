#!/usr/bin/env bash
# Checks Tools/scripts/compare-psic.sh without a build: two stand-in executables record what each
# run received, so the check sees the alternation, each side's own --a-env/--b-env, a fresh {out}
# folder per run, the summary lines, and an error (exit status 1 or 2, a message naming the fault)
# for every bad invocation.
#   Tools/scripts/compare-psic-check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
. Tools/scripts/lib/expect.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A stand-in psic: appends "SIDE ARGS MARK=$MARK" to the shared log, and writes into its {out}
# folder (the first argument) so a reused folder would show.
stand_in() {
  cat > "$work/$1" <<EOF
#!/usr/bin/env bash
[ -z "\$(ls -A "\$1")" ] || { echo "\$1 is not empty"; exit 3; }
sleep 0.05   # above GNU time's 0.01 s resolution, so each run has a wall time to compare
touch "\$1/written"
echo "$1 \$* MARK=\${MARK:-unset}" >> "$work/calls"
EOF
  chmod +x "$work/$1"
}
stand_in a
stand_in b
printf '#!/usr/bin/env bash\necho "bad input"\nexit 4\n' > "$work/failing"
chmod +x "$work/failing"

out=$(Tools/scripts/compare-psic.sh --a "$work/a" --b "$work/b" --b-env MARK=avx2 --runs 2 \
      -- {out} --flag 2>&1)
rc=$?
calls=$(cat "$work/calls" 2>/dev/null)
check "a side-by-side run exits 0" '[ "$rc" -eq 0 ]'
check "runs alternate a b a b" '[ "$(cut -d" " -f1 <<< "$calls" | tr "\n" " ")" = "a b a b " ]'
check "--b-env reaches b's runs only" \
  '[ "$(grep -c "^b .*MARK=avx2$" <<< "$calls")" = 2 ] && [ "$(grep -c "^a .*MARK=unset$" <<< "$calls")" = 2 ]'
check "{out} is a fresh folder per run, the other arguments pass as given" \
  '[ "$(awk "{print \$2}" <<< "$calls" | sort -u | wc -l)" = 4 ] && [ "$(grep -c -- " --flag MARK" <<< "$calls")" = 4 ]'
check "each run prints its wall time and peak memory" \
  '[ "$(grep -cE "^(a|b) run [12]: [0-9.]+ s, peak RSS [0-9]+ MiB$" <<< "$out")" = 4 ]'
check "the summary gives the medians and b/a" 'grep -qE "^median a [0-9.]+ s, b [0-9.]+ s: b/a = [0-9.]+$" <<< "$out"'
check "the summary names each side with its environment" \
  'grep -qx "a = $work/a" <<< "$out" && grep -qx "b = MARK=avx2 $work/b" <<< "$out"'

# A command too fast to time gets a plain answer, not a division by zero.
printf '#!/usr/bin/env bash\n' > "$work/instant"
chmod +x "$work/instant"
out=$(Tools/scripts/compare-psic.sh --a "$work/instant" --b "$work/instant" -- x 2>&1)
check "an untimeably fast command says so instead of printing nan" \
  '! grep -qi nan <<< "$out" && grep -qE "^median a [0-9.]+ s, b [0-9.]+ s: (b/a = [0-9.]+|no b/a \(a ran under)" <<< "$out"'

# Usage errors (status 2) and a failing run (status 1), each with a message naming the fault.
compare=Tools/scripts/compare-psic.sh
expect 2 "--b-env wants NAME=VALUE" -- "$compare" --a "$work/a" --b "$work/b" --b-env avx2 -- x
expect 2 "give two executables" -- "$compare" --a "$work/a" -- x
expect 2 "give two executables" -- "$compare" --a "$work/a" --b "$work/missing" -- x
expect 2 "give the psic arguments after --" -- "$compare" --a "$work/a" --b "$work/b"
expect 2 "--runs wants a positive count" -- "$compare" --a "$work/a" --b "$work/b" --runs 0 -- x
expect 2 "unknown argument '--c'" -- "$compare" --c x
expect 1 "run 1 of b failed" -- "$compare" --a "$work/a" --b "$work/failing" -- {out}
expect 1 "bad input" -- "$compare" --a "$work/a" --b "$work/failing" -- {out}

verdict compare-psic-check
