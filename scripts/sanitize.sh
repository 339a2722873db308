#!/usr/bin/env bash
# The sanitizer build: clang with AddressSanitizer, LeakSanitizer and UBSan into build-asan/,
# torch-free parts only (EDGEFM_SANITIZE_BUILD). Runs their unit tests and the fuzz targets'
# seed corpora (ctest), then fuzzes every target briefly (scripts/fuzz.sh --smoke). Any
# sanitizer report, leak or fuzzer finding fails the script.
# Usage: scripts/sanitize.sh [seconds-per-target]   (default 10; 0: no fuzzing)
#        scripts/sanitize.sh --build-only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sanitize_env.sh

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DEDGEFM_SANITIZE_BUILD=ON \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 > build-asan.configure.log 2>&1 || {
  cat build-asan.configure.log
  exit 1
}
rm -f build-asan.configure.log
cmake --build build-asan -j"$(nproc)"
[ "${1:-}" = "--build-only" ] && exit 0

ctest --test-dir build-asan --output-on-failure -j"$(nproc)" --timeout 600
seconds=${1:-10}
if [ "$seconds" != 0 ]; then
  scripts/fuzz.sh --smoke "$seconds"
fi
