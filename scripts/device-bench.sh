#!/usr/bin/env bash
# FM throughput of the cloud service (cloud_bench) at several server max batch sizes and client
# concurrencies, on the CPU or on a GPU machine. Writes <out>/<device>.json and prints a
# table. How to run it on a GPU machine and what the JSON holds: docs/device-bench.md.
#
#   scripts/device-bench.sh --device cpu                 # uses build/ (scripts/build.sh if missing)
#   scripts/device-bench.sh --device cuda --out-dir DIR    # GPU machine: builds build-cuda/ against
#                                                        # python3's CUDA LibTorch and .device-deps/
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
usage: scripts/device-bench.sh [options]
  --device cpu|cuda   where the FM runs (default cpu). cpu uses build/; cuda configures and builds
                      build-cuda/ (cloud_bench only) against the LibTorch of python3's torch and the
                      headers/static libraries in .device-deps/ (scripts/fetch-device-deps.sh)
  --fm FILE           reference FM file (default: models/fm.pt; on cpu, when it
                      does not exist, a tiny one is trained into models/fm-tiny.pt)
  --out-dir DIR       output folder (default out/device-bench)
  --batches LIST      server max batch sizes, one cloud_bench run each (default 1,8,32)
  --concurrency LIST  client counts (default 1,8,32)
  --duration-s S      measured seconds per configuration (default: cpu 5, cuda 8)
  --warmup-s S        unmeasured seconds per configuration (default: cpu 1, cuda 2)
EOF
}

command_line="scripts/device-bench.sh $*"  # recorded in the JSON's provenance
device=cpu
fm=""
out=out/device-bench
batches=1,8,32
concurrency=1,8,32
duration=""
warmup=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --fm) fm=$2; shift 2 ;;
    --out-dir) out=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --duration-s) duration=$2; shift 2 ;;
    --warmup-s) warmup=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "device-bench: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

say() { echo "device-bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

case "$device" in
  cpu) duration=${duration:-5}; warmup=${warmup:-1} ;;
  cuda) duration=${duration:-8}; warmup=${warmup:-2} ;;
  *) die "--device: expected cpu or cuda, got '$device'" ;;
esac
[[ "$batches" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--batches: expected a list like 1,8,32, got '$batches'"
[[ "$concurrency" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--concurrency: expected a list like 1,8,32, got '$concurrency'"

# shellcheck source=scripts/env.sh disable=SC1091
source scripts/env.sh
mkdir -p "$out"
out=$(cd "$out" && pwd)
env_file="$out/$device-env.txt"
build_log="$out/$device-build.log"
: > "$env_file"

# --- the FM file -------------------------------------------------------------------------------
if [ -n "$fm" ]; then
  [ -f "$fm" ] || die "--fm $fm: no such file"
else
  for candidate in models/fm.pt; do
    if [ -f "$candidate" ]; then fm=$candidate; break; fi
  done
fi

# --- the programs ------------------------------------------------------------------------------
if [ "$device" = cpu ]; then
  bench=build/bench/cloud_bench
  if [ ! -x "$bench" ] || { [ -z "$fm" ] && [ ! -x build/edgefm ]; }; then
    say "building cloud_bench and edgefm with scripts/build.sh"
    scripts/build.sh --target cloud_bench edgefm
  fi
  if [ -z "$fm" ]; then
    fm=models/fm-tiny.pt
    if [ ! -f "$fm" ]; then
      say "no models/fm.pt: training a tiny FM into $fm (1 epoch, 5000 images)"
      mkdir -p models
      build/edgefm fm train --epochs 1 --train-limit 5000 --out "$fm"
    fi
  fi
  {
    echo "host=$(hostname)"
    echo "cores=$(nproc)"
    echo "cpu=$(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)"
    echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  } >> "$env_file"
else
  [ -n "$fm" ] || die "no FM file: the GPU machine has no data set to train one; train it here" \
    "(build/edgefm fm train --out models/fm.pt), carry it in the run call and pass --fm"
  deps=$PWD/.device-deps
  libdir=$deps/usr/lib/x86_64-linux-gnu
  for f in "$deps/httplib/httplib.h" "$libdir/libcrypto.a" "$libdir/libz.a" \
           "$deps/usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake" \
           "$deps/usr/share/cmake/CLI11/CLI11Config.cmake"; do
    [ -f "$f" ] || die "$f missing: run scripts/fetch-device-deps.sh on the Debian machine and" \
      "name .device-deps in the run call's carry"
  done
  command -v python3 > /dev/null || die "python3 (with torch) not found"
  command -v cmake > /dev/null || die "cmake not found"
  generator=Ninja
  command -v ninja > /dev/null || generator="Unix Makefiles"

  say "asking python3's torch for its CMake prefix and libraries"
  python3 - > "$env_file" <<'EOF' || die "python3 could not import torch (see above)"
import glob, os, platform, torch
d = os.path.dirname(torch.__file__)
print("torch_prefix=" + torch.utils.cmake_prefix_path)
print("torch_lib=" + os.path.join(d, "lib"))
print("torch_version=" + torch.__version__)
print("torch_cuda=" + str(torch.version.cuda))
print("torch_cxx11_abi=" + str(int(torch.compiled_with_cxx11_abi())))
print("cuda_available=" + str(int(torch.cuda.is_available())))
print("gpu=" + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"))
print("nvidia_libs=" + ":".join(sorted(glob.glob(os.path.join(os.path.dirname(d), "nvidia", "*", "lib")))))
print("glibc=" + "-".join(platform.libc_ver()))
EOF
  {
    echo "cores=$(nproc)"
    echo "cmake=$(cmake --version | head -1)"
    echo "cxx=$(c++ --version 2>/dev/null | head -1)"
    echo "nvcc=$(nvcc --version 2>/dev/null | tail -1)"
    echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  } >> "$env_file"
  sed 's/^/  /' "$env_file" >&2
  get() { sed -n "s/^$1=//p" "$env_file" | head -1; }
  torch_prefix=$(get torch_prefix)
  torch_lib=$(get torch_lib)
  [ "$(get cuda_available)" = 1 ] || die "python3's torch sees no GPU (torch $(get torch_version), cuda $(get torch_cuda))"
  [ -f "$torch_lib/libtorch_cuda.so" ] || die "$torch_lib/libtorch_cuda.so missing: this torch has no CUDA"

  # Torch's CMake config enables CUDA and reads the architectures; name them (H200: 9.0) so it
  # does not probe the GPU, and find nvcc even when it is not on PATH.
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  if [ -z "${CUDACXX:-}" ]; then
    if command -v nvcc > /dev/null; then CUDACXX=$(command -v nvcc); export CUDACXX
    elif [ -x /usr/local/cuda/bin/nvcc ]; then export CUDACXX=/usr/local/cuda/bin/nvcc; fi
  fi
  [ -d /usr/local/cuda ] && export CUDAToolkit_ROOT=${CUDAToolkit_ROOT:-/usr/local/cuda}
  # The torch wheel's CUDA libraries (cuDNN, cuBLAS, ...) live in site-packages/nvidia/*/lib.
  nvidia_libs=$(get nvidia_libs)
  LD_LIBRARY_PATH="$torch_lib${nvidia_libs:+:$nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH

  cmake_args=(
    -S . -B build-cuda -G "$generator" -DCMAKE_BUILD_TYPE=Release
    -DEDGEFM_DEVICE_BUILD=ON -DEDGEFM_BUILD_TESTS=OFF
    "-DCMAKE_PREFIX_PATH=$torch_prefix;$deps/usr"
    "-Dnlohmann_json_DIR=$deps/usr/share/cmake/nlohmann_json"
    "-DCLI11_DIR=$deps/usr/share/cmake/CLI11"
    # cpp-httplib header-only (upstream's single header; no CPPHTTPLIB_* define, no library).
    "-DHTTPLIB_INCLUDE_DIR=$deps/httplib"
    # zlib and OpenSSL's libcrypto linked statically from the Debian archives.
    "-DZLIB_INCLUDE_DIR=$deps/usr/include" "-DZLIB_LIBRARY=$libdir/libz.a"
    -DOPENSSL_USE_STATIC_LIBS=TRUE "-DOPENSSL_INCLUDE_DIR=$deps/usr/include"
    "-DOPENSSL_CRYPTO_LIBRARY=$libdir/libcrypto.a" "-DOPENSSL_SSL_LIBRARY=$libdir/libssl.a"
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_POLICY_VERSION_MINIMUM=3.5
    # Appended to C++ link lines only (nvcc, which torch's config may enable, rejects -Wl,):
    # the wheel's libraries find their own dependencies through their RUNPATH at run time, and
    # libtorch_cuda.so stays needed even where the linker defaults to --as-needed (nothing in
    # cloud_bench names a CUDA symbol; without it torch::cuda::is_available() would be false).
    "-DCMAKE_CXX_STANDARD_LIBRARIES=-Wl,--allow-shlib-undefined -Wl,--no-as-needed $torch_lib/libtorch_cuda.so -Wl,--as-needed"
  )
  # pkg-config sees no .pc file, so src/cloud takes the header-only httplib even if the image
  # had Debian's split one (FindOpenSSL also asks pkg-config, for hints only).
  mkdir -p build-cuda/no-pkgconfig
  export PKG_CONFIG_LIBDIR=$PWD/build-cuda/no-pkgconfig PKG_CONFIG_PATH=
  say "configuring build-cuda (log: $build_log)"
  if ! cmake "${cmake_args[@]}" > "$build_log" 2>&1; then
    if grep -q "nvToolsExt" "$build_log"; then
      # Older torch configs fall back to the NVTX2 library, which CUDA 12.9+ no longer has:
      # point CUDA::nvToolsExt at the header-only NVTX3 target instead, and configure again.
      say "configure failed on NVTX; retrying with CUDA::nvToolsExt -> CUDA::nvtx3"
      mkdir -p build-cuda
      cat > build-cuda/nvtx-shim.cmake <<'EOF'
find_package(CUDAToolkit QUIET)
if(TARGET CUDA::nvtx3 AND NOT TARGET CUDA::nvToolsExt)
  add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
  target_link_libraries(CUDA::nvToolsExt INTERFACE CUDA::nvtx3)
endif()
EOF
      cmake "${cmake_args[@]}" "-DCMAKE_PROJECT_INCLUDE=$PWD/build-cuda/nvtx-shim.cmake" \
        >> "$build_log" 2>&1 || { tail -60 "$build_log" >&2; die "configure failed (see $build_log)"; }
    else
      tail -60 "$build_log" >&2
      die "configure failed (see $build_log)"
    fi
  fi
  say "building cloud_bench in build-cuda"
  cmake --build build-cuda --target cloud_bench -j"$(nproc)" >> "$build_log" 2>&1 ||
    { tail -80 "$build_log" >&2; die "build failed (see $build_log)"; }
  bench=build-cuda/bench/cloud_bench
  { echo "--- ldd $bench (torch, c10, cuda)"; ldd "$bench" | grep -E "torch|c10|cuda" || true; } \
    | tee -a "$build_log" >&2
fi

# --- the benchmark -----------------------------------------------------------------------------
say "FM $fm on $device; max batch {$batches} x clients {$concurrency}; ${warmup}s warm-up + ${duration}s each"
monitor=""
if [ "$device" = cuda ] && command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 \
    > "$out/cuda-gpu.csv" 2>&1 &
  monitor=$!
fi
status=0
IFS=, read -r -a batch_list <<< "$batches"
raw=()
for b in "${batch_list[@]}"; do
  json="$out/$device-b$b.json"
  raw+=("$json")
  "$bench" --fm "$fm" --device "$device" --concurrency "$concurrency" --max-batch "$b" \
    --skip-unbatched --warmup-s "$warmup" --duration-s "$duration" --json "$json" > /dev/null ||
    { status=$?; say "cloud_bench --max-batch $b failed (exit $status)"; break; }
done
if [ -n "$monitor" ]; then kill "$monitor" 2> /dev/null || true; wait "$monitor" 2> /dev/null || true; fi
[ "$status" = 0 ] || exit "$status"
[ "$device" = cpu ] && echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$env_file"

# --- one JSON and one table --------------------------------------------------------------------
python3 - "$out/$device.json" "$device" "$fm" "$env_file" "$command_line" "${raw[@]}" <<'EOF'
import json, os, sys
path, device, fm, env_file, command = sys.argv[1:6]
raws = sys.argv[6:]
env = {}
for line in open(env_file):
    if "=" in line:
        k, v = line.rstrip("\n").split("=", 1)
        env[k] = v
runs = [json.load(open(r)) for r in raws]
rows = []
for run in runs:
    for r in run["rows"]:
        rows.append({k: r[k] for k in ("max_batch", "clients", "requests", "errors", "requests_per_s",
                                       "images_per_s", "latency_ms_mean", "latency_ms_p50",
                                       "latency_ms_p95", "latency_ms_p99", "mean_batch_rows",
                                       "mean_queue_us")})
rows.sort(key=lambda r: (r["clients"], r["max_batch"]))
for r in rows:
    base = [u for u in rows if u["clients"] == r["clients"] and u["max_batch"] == 1]
    r["speedup_vs_max_batch_1"] = (r["requests_per_s"] / base[0]["requests_per_s"]
                                   if base and base[0]["requests_per_s"] > 0 else None)
result = {"benchmark": "device-bench", "device": device, "fm_file": fm,
          "model": runs[0]["model"] if runs else "", "environment": env,
          "warmup_s": runs[0]["warmup_s"] if runs else None,
          "duration_s": runs[0]["duration_s"] if runs else None,
          "max_queue_delay_us": runs[0]["max_queue_delay_us"] if runs else None,
          "rows": rows, "runs": runs}
# cloud_bench's provenance (date, machine, version) with this script's command line.
if runs and isinstance(runs[0].get("provenance"), dict):
    result["provenance"] = dict(runs[0]["provenance"], command=command)
gpu_csv = os.path.join(os.path.dirname(path), "cuda-gpu.csv")
if device == "cuda" and os.path.exists(gpu_csv):
    util, mem = [], []
    for line in open(gpu_csv):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            util.append(int(parts[1])); mem.append(int(parts[2]))
    result["gpu_monitor"] = {"samples": len(util), "max_utilization_pct": max(util, default=None),
                             "max_memory_used_mib": max(mem, default=None)}
with open(path, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
for r in raws:
    os.remove(r)
head = ["max batch", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "mean batch", "errors", "vs batch 1"]
table = [[str(r["max_batch"]), str(r["clients"]), f'{r["requests_per_s"]:.1f}',
          f'{r["latency_ms_p50"]:.2f}', f'{r["latency_ms_p95"]:.2f}', f'{r["latency_ms_p99"]:.2f}',
          f'{r["mean_batch_rows"]:.2f}', str(r["errors"]),
          f'{r["speedup_vs_max_batch_1"]:.2f}x' if r["speedup_vs_max_batch_1"] else ""] for r in rows]
widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
print(f"device-bench: {device}, {result['model']}, {env.get('gpu') or env.get('cpu', '')}")
print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for t in table:
    print("| " + " | ".join(c.rjust(w) for c, w in zip(t, widths)) + " |")
print(f"device-bench: wrote {path}")
EOF
