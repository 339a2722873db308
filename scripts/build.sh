#!/usr/bin/env bash
# Configures and builds EdgeFM into build/ (Release, Ninja). Extra arguments go to
# `cmake --build` (for example: --target edgefm).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > build.configure.log 2>&1 || {
  cat build.configure.log
  exit 1
}
rm -f build.configure.log
cmake --build build -j"$jobs" "$@"
