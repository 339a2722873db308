#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
scripts/build.sh
# Tests share one set of small trained models (build/test-fixtures), made on first use.
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
# The torch-free parts again under ASan/LSan/UBSan (build-asan/), plus a short run of every
# fuzz target (docs/fuzzing.md).
scripts/sanitize.sh
