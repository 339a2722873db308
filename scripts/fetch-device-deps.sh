#!/usr/bin/env bash
# Fetches, on a Debian 12 machine with network access, the build dependencies that a GPU
# machine may lack, and unpacks them into .device-deps/ (ignored by git) for
# `scripts/device-bench.sh --device cuda`. The GPU machine needs no network and no Debian
# packages: copy the folder there with the repository (docs/device-bench.md).
#
#   .device-deps/usr/include/            nlohmann/, CLI/, openssl/, eigen3/, zlib.h, zconf.h
#   .device-deps/usr/share/cmake/        nlohmann_json and CLI11 package configs
#   .device-deps/usr/lib/x86_64-linux-gnu/libcrypto.a, libssl.a, libz.a   (static: no .so travels)
#   .device-deps/httplib/httplib.h       cpp-httplib 0.11.4 as one header (from the source package)
#   .device-deps/MANIFEST                package versions
#
# Why these choices:
# - OpenSSL (SHA-256 in common/checksum.cpp) and zlib (data/idx.cpp) are linked statically from
#   the Debian archives, so the GPU machine needs neither their headers nor their .so files.
# - Debian's libcpp-httplib-dev ships only the declarations (httplib.h) plus libcpp-httplib.so,
#   built with OpenSSL, zlib and brotli: using it there would mean carrying that .so and its
#   runtime libraries and compiling with the matching CPPHTTPLIB_* defines. Upstream's single
#   header, from the same Debian source package (0.11.4 with Debian's patches applied), compiles
#   header-only with no CPPHTTPLIB_* define and no library; src/cloud/CMakeLists.txt already
#   falls back to it when pkg-config has no cpp-httplib.
# - SQLite (edge/), GoogleTest, Google Benchmark and prometheus-cpp are not needed: the device
#   build (-DEDGEFM_DEVICE_BUILD=ON) leaves out edge/, cli/, the tests and route_bench, and
#   prometheus-cpp is optional already.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=.device-deps
packages=(nlohmann-json3-dev libcli11-dev libssl-dev zlib1g-dev libeigen3-dev)
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
arch_dir=x86_64-linux-gnu
[ "$(dpkg --print-architecture)" = amd64 ] || {
  echo "fetch-device-deps: expected an amd64 machine (the GPU machine is x86-64), this is $(dpkg --print-architecture)" >&2
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$dest"
mkdir -p "$dest"

echo "fetch-device-deps: downloading ${packages[*]}"
(cd "$work" && apt-get download -q "${packages[@]}") > "$work/download.log" 2>&1 ||
  { cat "$work/download.log" >&2; exit 1; }
for p in "${packages[@]}"; do
  ls "$work"/"${p}"_*.deb > /dev/null 2>&1 || { echo "fetch-device-deps: apt-get download $p failed" >&2; exit 1; }
done
for deb in "$work"/*.deb; do
  dpkg -x "$deb" "$dest"
  # shellcheck disable=SC2016
  dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >> "$dest/MANIFEST"
done

# OpenSSL keeps two headers in an architecture folder; one include folder is simpler for CMake.
cp "$dest/usr/include/$arch_dir/openssl/"*.h "$dest/usr/include/openssl/"
rm -rf "$dest/usr/include/$arch_dir"
# Keep only the static libraries: the .so links point at runtime packages that do not travel.
find "$dest/usr/lib/$arch_dir" -maxdepth 1 -name '*.so' -delete
rm -rf "$dest/usr/share/doc" "$dest/usr/share/man" "$dest/usr/share/pkgconfig" \
       "$dest/usr/lib/$arch_dir/pkgconfig"

# cpp-httplib's full header from its Debian source package (no deb-src line is configured here,
# so a temporary source list and lists folder are used; the system's apt state is untouched).
echo "fetch-device-deps: downloading the cpp-httplib source package ($codename)"
mkdir -p "$work/lists/partial" "$work/src"
{
  echo "deb-src http://deb.debian.org/debian $codename main"
  echo "deb-src http://deb.debian.org/debian $codename-updates main"
  echo "deb-src http://deb.debian.org/debian-security $codename-security main"
} > "$work/sources.list"
apt_src=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/none"
         -o "Dir::State::Lists=$work/lists")
apt-get -q "${apt_src[@]}" update > "$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }
(cd "$work/src" && apt-get -q "${apt_src[@]}" source --download-only cpp-httplib > ../source.log 2>&1) ||
  { cat "$work/source.log" >&2; exit 1; }
dsc=$(ls "$work"/src/cpp-httplib_*.dsc)
dpkg-source --no-check -x "$dsc" "$work/src/tree" > /dev/null
mkdir -p "$dest/httplib"
cp "$work/src/tree/httplib.h" "$dest/httplib/httplib.h"
echo "cpp-httplib-source $(basename "$dsc" .dsc | sed 's/^cpp-httplib_//') (httplib.h, patches applied)" \
  >> "$dest/MANIFEST"

# The single header carries the implementation; Debian's installed one is declarations only.
grep -q "inline bool Server::listen" "$dest/httplib/httplib.h" || {
  echo "fetch-device-deps: $dest/httplib/httplib.h has no implementation (not upstream's single header)" >&2
  exit 1
}

echo "fetch-device-deps: $dest ready ($(du -sh "$dest" | cut -f1)):"
sed 's/^/  /' "$dest/MANIFEST"
