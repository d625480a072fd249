#!/usr/bin/env bash
# Fuzzes the data path (parse, flow table, rewrite, checksums) with libFuzzer
# under ASan and UBSan for N seconds (default 60), seeded from the packet
# fixtures. Prints libFuzzer's final stats and a one-line summary; exits
# non-zero on any crash, leak, sanitizer report or broken invariant. A
# crashing input is left in fuzz-out/ (crash-*) for a fixture and a fix.
#
# Usage: scripts/fuzz.sh [seconds]   (npm run fuzz -- 600)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "fuzz: seconds must be a positive integer, got '$seconds'" >&2
  exit 2
fi
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (run: npm run setup)" >&2; exit 2; }

bin=build/fuzz/fuzz_engine
# Corpus, seeds, log and crash inputs live in fuzz-out/ (git-ignored): node-gyp
# rebuild wipes build/, and the corpus is worth keeping between runs.
work=fuzz-out
sources=(native/packet.cc native/checksum.cc native/siphash.cc native/flow_table.cc native/flow_track.cc native/load_choice.cc native/load_decider.cc native/own_load.cc native/icmp.cc native/engine.cc native/engine_icmp.cc native/fuzz/check_ipv6.cc native/fuzz/fuzz_engine.cc)
mkdir -p "$work/corpus" "$(dirname "$bin")"

# Only the engine sources: no Node-API, no netlink, so nothing else needs the sanitizers.
# Each source compiles on its own, all at once (the suite waits on this build), then one link.
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -Wall -Wextra -Inative)
if [[ ! -x $bin || -n $(find "${sources[@]}" native/*.h native/fuzz/*.h -newer "$bin" -print -quit) ]]; then
  echo "fuzz: building $bin"
  objdir=$(dirname "$bin")/obj
  mkdir -p "$objdir"
  objs=() pids=()
  for src in "${sources[@]}"; do
    objs+=("$objdir/$(basename "$src" .cc).o")
    clang++ "${flags[@]}" -c "$src" -o "${objs[-1]}" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done # set -e: a source that does not compile stops here
  clang++ "${flags[@]}" -o "$bin" "${objs[@]}"
fi

node scripts/fuzz-seeds.mjs test/fixtures/packets "$work/seeds"

# New inputs go to the first directory (kept between runs); the seeds are read only.
log=$work/last-run.log
set +e
"$bin" -max_total_time="$seconds" -print_final_stats=1 -max_len=2048 -timeout=10 \
  -use_value_profile=1 -artifact_prefix="$work/" "$work/corpus" "$work/seeds" >"$log" 2>&1
rc=$?
set -e

grep -E '^(stat::|INFO: (Loaded|seed corpus|A corpus)|==[0-9]+==|SUMMARY|.*runtime error|artifact_prefix|Test unit written)' "$log" || true
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
if ((rc != 0)); then
  echo "fuzz: FAIL (exit $rc) after ${execs:-?} executions; full log: $log" >&2
  tail -n 60 "$log" >&2
  echo "fuzz: reproduce with: $bin $work/crash-<id> (then turn the input into a fixture)" >&2
  exit "$rc"
fi
echo "fuzz: PASS: ${execs:-0} executions in ${seconds} s, no crash (log: $log)"
