#!/usr/bin/env bash
# Run Molecule scenarios, MOLECULE_JOBS at a time (default 2: most of a scenario is
# waiting on apt, supervisor and jobs, not CPU), the longest first (tests/harness/
# scenario-order lists them by their last measured time; unknown ones go first), so
# that the last job to finish is a short one. Each scenario logs to
# .build/molecule/NAME.log, every line with the time it was written (where a scenario
# spends its time); the failing ones' tails are printed, and the exit code is non-zero
# when any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
jobs=${MOLECULE_JOBS:-2}
logs=.build/molecule
mkdir -p "$logs"
[ $# -gt 0 ] || { echo "usage: run-scenarios.sh SCENARIO..." >&2; exit 2; }

stamp() {
  local line
  while IFS= read -r line; do printf '%(%H:%M:%S)T %s\n' -1 "$line"; done
}

run_one() {
  local name=$1 start=$SECONDS
  if molecule test -s "$name" 2>&1 | stamp >"$logs/$name.log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
    echo "PASS $name $((SECONDS - start)) s"
  else
    echo "FAIL $name $((SECONDS - start)) s (log: $logs/$name.log)"
  fi
}
export -f run_one stamp
export logs

order=tests/harness/scenario-order
ordered=$( { grep -vxF -f "$order" <(printf '%s\n' "$@"); grep -xF -f <(printf '%s\n' "$@") "$order"; } || true)

start=$SECONDS
# Each result line is shown as it comes (on stderr: a tee to /dev/stderr would
# truncate a log file that stderr points to) and kept for the summary.
results=$(printf '%s\n' $ordered | xargs -P "$jobs" -I{} bash -c 'run_one {}' |
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
