#!/usr/bin/env bash
# The test suite: node's test runner over the compiled tests, one file at a
# time (the namespace tests share the machine's two cores).
#
# Every run leaves nothing behind, also when it fails or is interrupted
# (SIGINT, SIGTERM from CI's time limit): its namespaces share the prefix
# dpr-$DPR_TEST_RUN-, its temporary files live under one TMPDIR, and the trap
# below removes both. The run's output is kept in test-results/ when it fails,
# with the logs of the daemons and servers the failing tests ran.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "test: the namespace tests need root (CAP_NET_ADMIN); run as root" >&2
  exit 1
fi

run=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export DPR_TEST_RUN=$run
TMPDIR=$(mktemp -d "/tmp/dpr-test-$run-XXXX")
export TMPDIR
results=test-results/$run
export DPR_TEST_LOG_DIR=$PWD/$results/logs
mkdir -p "$DPR_TEST_LOG_DIR"
log=$results/npm-test.log

runner=
cleanup() {
  local rc=$?
  # To the end whatever fails on the way: with errexit, the kill below of a
  # watchdog that had already exited (it is what sent the TERM) ended the
  # script here, and the runner and its test files went on without it.
  set +e
  trap - EXIT INT TERM HUP
  [[ -n ${watchdog:-} ]] && kill "$watchdog" 2>/dev/null
  if [[ -n $runner ]] && kill -0 "$runner" 2>/dev/null; then
    kill -TERM -- "-$runner" 2>/dev/null || true  # the runner and every test file it started
    sleep 2
    kill -KILL -- "-$runner" 2>/dev/null || true
  fi
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep "^dpr-$run-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  # Again if a process that was still going created a file while rm ran
  # (seen after a SIGTERM: the folder was left, empty).
  local i
  for i in 1 2 3; do
    rm -rf "$TMPDIR" 2>/dev/null || true
    [[ -e $TMPDIR ]] || break
    sleep 1
  done
  # Where the time went (the suite's budget is 15 minutes on CI): the slowest files.
  [[ -s $results/timing.txt ]] && head -n 16 "$results/timing.txt"
  if [[ $rc -eq 0 ]]; then
    rm -rf "$results"
    rmdir test-results 2>/dev/null || true
  else
    # CI keeps no files: the warnings and errors of every daemon and server go to the output too.
    echo "test: warnings and errors the processes of this run printed (from $DPR_TEST_LOG_DIR):" >&2
    grep -H -i -E '"level":"(warn|error)"|\b(warn|error)\b|stderr:' "$DPR_TEST_LOG_DIR"/*.log 2>/dev/null | tail -n 150 >&2 || true
    # Last, where a reader of a truncated output looks first: why each failing
    # test failed (the reporter's summary, without the stack frames).
    echo "test: the failing tests and their messages:" >&2
    sed -n '/failing tests:/,$p' "$log" 2>/dev/null | grep -v -E '^\s+at ' | head -n 120 >&2 || true
    echo "test: FAILED (exit $rc); the run's output is in $log, daemon and server logs in $DPR_TEST_LOG_DIR" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# npm does not pass a SIGTERM on to the script it runs: when `npm test` (or
# whatever runs us through it) goes away, stop too, as if we had been told.
watched=() p=$PPID
while [[ $p -gt 1 ]]; do
  watched+=("$p")
  [[ $(ps -o comm= -p "$p") == npm* ]] && break
  p=$(ps -o ppid= -p "$p" | tr -d ' ')
done
[[ $(ps -o comm= -p "${watched[-1]}") == npm* ]] || watched=("$PPID")
(
  while sleep 1; do
    for w in "${watched[@]}"; do kill -0 "$w" 2>/dev/null || { kill -TERM $$; exit 0; }; done
  done
) &
watchdog=$!

# Job control gives the runner a process group of its own, so the trap can
# stop it and everything it started.
set -m
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./dist/test/support/timing-reporter.js --test-reporter-destination="$results/timing.txt" \
  dist/test/*.test.js > >(tee "$log") 2>&1 &
runner=$!
set +m
wait "$runner"
