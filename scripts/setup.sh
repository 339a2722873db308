#!/usr/bin/env bash
# Installs the Debian packages EdgeFM needs. Idempotent: when every package is present it
# only checks and returns in well under a second.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopenblas0            # libopenblas0: without it libtorch uses reference BLAS
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev
  libsqlite3-dev zlib1g-dev libssl-dev prometheus-cpp-dev
  libeigen3-dev                        # header-only linear algebra (the mahalanobis score)
  libpng-dev libjpeg62-turbo-dev       # image decoding (image-folder data sets)
  libsndfile1-dev libsamplerate0-dev libfftw3-dev  # audio decoding, resampling, log-mel
  espeak-ng sox                        # the synthesized keywords data set
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev                      # the deployment manifests' test (deploy/)
  clang-14 libclang-rt-14-dev          # the sanitizer build and libFuzzer (scripts/sanitize.sh)
  libtomlplusplus-dev                  # --config files (TOML)
  dataset-fashion-mnist gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
