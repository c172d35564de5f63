#!/usr/bin/env bash
# Run Molecule scenarios, MOLECULE_JOBS at a time (default 2: most of a scenario is
# waiting on apt, supervisor and jobs, not CPU). Each scenario logs to
# .build/molecule/NAME.log; the failing ones' tails are printed, and the exit code
# is non-zero when any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
jobs=${MOLECULE_JOBS:-2}
logs=.build/molecule
mkdir -p "$logs"
[ $# -gt 0 ] || { echo "usage: run-scenarios.sh SCENARIO..." >&2; exit 2; }

run_one() {
  local name=$1 start=$SECONDS
  if molecule test -s "$name" >"$logs/$name.log" 2>&1; then
    echo "PASS $name $((SECONDS - start)) s"
  else
    echo "FAIL $name $((SECONDS - start)) s (log: $logs/$name.log)"
  fi
}
export -f run_one
export logs

start=$SECONDS
# Each result line is shown as it comes (on stderr: a tee to /dev/stderr would
# truncate a log file that stderr points to) and kept for the summary.
results=$(printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one {}' |
  while IFS= read -r line; do echo "$line" >&2; echo "$line"; done)
failed=$(grep -c '^FAIL' <<<"$results" || true)
for name in $(awk '/^FAIL/ {print $2}' <<<"$results"); do
  echo; echo "=== last lines of $logs/$name.log"
  grep -vE 'RETRYING' "$logs/$name.log" | tail -60
done
passed=$(grep -c '^PASS' <<<"$results" || true)
echo
echo "molecule: $passed passed, $failed failed in $((SECONDS - start)) s"
[ "$failed" -eq 0 ]
