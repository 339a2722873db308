#!/usr/bin/env bash
# Fuzzes the targets of fuzz/ (libFuzzer, ASan + UBSan; built into build-asan/ first).
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]       (default 300 s, every target)
#        scripts/fuzz.sh --smoke seconds                         (scripts/sanitize.sh's run)
# Each target starts from its seeds (fuzz/corpus/<target>/) and what earlier runs found
# (fuzz/corpus-local/<target>/, ignored by git); new inputs go to the latter, unless --smoke,
# which keeps nothing. A finding (crash, leak, sanitizer report, slow input, excess memory) is
# written to build-asan/fuzz-findings/<target>-*, and the script fails; replay one with
#   build-asan/fuzz/<target>_fuzzer <file>
# Targets run two at a time (or one per core, if fewer).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sanitize_env.sh

smoke=0
if [ "${1:-}" = "--smoke" ]; then
  smoke=1
  shift
fi
seconds=${1:-300}
[ $# -gt 0 ] && shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(ls fuzz/corpus))
fi
[ "$smoke" = 1 ] || scripts/sanitize.sh --build-only

findings=build-asan/fuzz-findings
logs=build-asan/fuzz-logs
mkdir -p "$findings" "$logs"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

fuzz_one() {
  local target=$1 new_corpus
  if [ "$smoke" = 1 ]; then
    new_corpus=$scratch/$target
  else
    new_corpus=fuzz/corpus-local/$target
  fi
  mkdir -p "$new_corpus"
  if build-asan/fuzz/"${target}"_fuzzer "$new_corpus" fuzz/corpus/"$target" \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
      -artifact_prefix="$findings/$target-" > "$logs/$target.log" 2>&1; then
    local runs
    runs=$(grep -m1 'stat::number_of_executed_units' "$logs/$target.log" | awk '{print $2}')
    echo "fuzz: $target: ${runs:-?} runs in ${seconds} s, no finding"
  else
    echo "fuzz: $target: FINDING (log: $logs/$target.log)"
    grep -E -A30 '^==[0-9]+==ERROR|runtime error|fuzz invariant|uncaught exception|deadly signal|ERROR: libFuzzer' \
      "$logs/$target.log" | head -60
    return 1
  fi
}

parallel=$(( $(nproc) < 2 ? $(nproc) : 2 ))
failed=0
pids=()
for target in "${targets[@]}"; do
  fuzz_one "$target" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$parallel" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
exit $failed
