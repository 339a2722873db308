# The cloud service (`edgefm serve`) as a container image: docs/deploy.md.
#
#   docker build -t edgefm:0.1.0 .
#   docker run --rm -p 8000:8000 -v "$PWD/models:/mnt/models:ro" edgefm:0.1.0
#
# The image holds the program only. The FM is mounted at /mnt/models/fm.pt, where KServe's
# storage initializer also puts it (deploy/kserve/). Every option of `edgefm serve` can be
# appended to the run command or set in the manifests' args.

# ---- build: the toolchain and the -dev packages, the program built in Release -----------
FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libtorch-dev libopenblas0 \
      libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev \
      libsqlite3-dev zlib1g-dev libssl-dev prometheus-cpp-dev libeigen3-dev \
      libpng-dev libjpeg62-turbo-dev \
      libsndfile1-dev libsamplerate0-dev libfftw3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DEDGEFM_BUILD_TESTS=OFF -DEDGEFM_BUILD_BENCH=OFF \
 && cmake --build /build --target edgefm \
 && install -m 0755 /build/edgefm /usr/local/bin/edgefm

# ---- runtime: the shared libraries the program links, curl for the health check ---------
FROM debian:bookworm-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      libtorch1.13 libopenblas0 \
      libcpp-httplib0.11 libprometheus-cpp-core1.0 libssl3 libsqlite3-0 \
      libpng16-16 libjpeg62-turbo libsndfile1 libsamplerate0 libfftw3-single3 \
      curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/edgefm /usr/local/bin/edgefm
# A fixed numeric id, so that Kubernetes' runAsNonRoot can verify it without a name lookup.
# /var/lib/edgefm/customization: where a volume for --customization-dir goes (docs/deploy.md);
# a Docker volume mounted there takes its owner from the image.
RUN groupadd --system --gid 10001 edgefm \
 && useradd --system --uid 10001 --gid edgefm --home-dir /var/lib/edgefm --create-home \
      --shell /usr/sbin/nologin edgefm \
 && mkdir -p /mnt/models /var/lib/edgefm/customization \
 && chown edgefm:edgefm /mnt/models /var/lib/edgefm/customization
USER 10001:10001
WORKDIR /var/lib/edgefm
# Torch threads: one OpenBLAS pool; OpenMP threads sleep instead of spinning (scripts/env.sh).
ENV OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8000/v2/health/live"]
ENTRYPOINT ["edgefm"]
CMD ["serve", "--fm", "/mnt/models/fm.pt", "--host", "0.0.0.0", "--port", "8000"]
