#include "models/encoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace edgefm::models {

std::vector<float> embed_all(const ImageEncoder& encoder, const float* images, int64_t n,
                             int64_t batch_size) {
  const int64_t dim = encoder.embedding_dim();
  const int64_t numel = encoder.input_shape().numel();
  std::vector<float> out(static_cast<size_t>(n * dim));
  for (int64_t start = 0; start < n; start += batch_size) {
    int64_t count = std::min(batch_size, n - start);
    encoder.embed(images + start * numel, count, out.data() + start * dim);
  }
  return out;
}

LatencyStats measure_latency(const ImageEncoder& encoder, int64_t batch, int repetitions,
                             int warmup) {
  std::vector<float> input(static_cast<size_t>(batch * encoder.input_shape().numel()), 0.0f);
  std::vector<float> output(static_cast<size_t>(batch * encoder.embedding_dim()));
  for (int i = 0; i < warmup; ++i) encoder.embed(input.data(), batch, output.data());
  std::vector<double> times;
  times.reserve(static_cast<size_t>(repetitions));
  for (int i = 0; i < repetitions; ++i) {
    auto start = std::chrono::steady_clock::now();
    encoder.embed(input.data(), batch, output.data());
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  LatencyStats stats;
  stats.repetitions = repetitions;
  if (times.empty()) return stats;
  double sum = 0;
  for (double t : times) sum += t;
  stats.mean_ms = sum / times.size();
  double square = 0;
  for (double t : times) square += (t - stats.mean_ms) * (t - stats.mean_ms);
  stats.stdev_ms = std::sqrt(square / times.size());
  std::sort(times.begin(), times.end());
  stats.median_ms = times[times.size() / 2];
  stats.p99_ms = times[std::min(times.size() - 1, static_cast<size_t>(0.99 * times.size()))];
  return stats;
}

}  // namespace edgefm::models
