#include "models/encoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "data/audio.h"
#include "data/image.h"

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

namespace {

LatencyStats summarize(std::vector<double> times) {
  LatencyStats stats;
  stats.repetitions = static_cast<int>(times.size());
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

// Median and spread of `repetitions` timed calls of `run` after `warmup` untimed ones.
template <typename Run>
LatencyStats time_calls(Run&& run, int repetitions, int warmup) {
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> times;
  times.reserve(static_cast<size_t>(std::max(repetitions, 0)));
  for (int i = 0; i < repetitions; ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return summarize(std::move(times));
}

}  // namespace

LatencyStats measure_latency(const ImageEncoder& encoder, int64_t batch, int repetitions,
                             int warmup) {
  std::vector<float> input(static_cast<size_t>(batch * encoder.input_shape().numel()), 0.0f);
  std::vector<float> output(static_cast<size_t>(batch * encoder.embedding_dim()));
  return time_calls([&] { encoder.embed(input.data(), batch, output.data()); }, repetitions, warmup);
}

LatencyStats measure_frontend_latency(const data::SampleSpec& spec, int repetitions, int warmup) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> noise(-0.5f, 0.5f);
  if (spec.modality == data::Modality::audio) {
    data::Waveform wave;
    wave.sample_rate = spec.audio.sample_rate;
    wave.channels = 1;
    wave.samples.resize(static_cast<size_t>(spec.audio.window_samples()));
    for (auto& x : wave.samples) x = noise(rng);
    return time_calls([&] { (void)data::preprocess_audio(wave, spec); }, repetitions, warmup);
  }
  data::DecodedImage image;
  image.width = spec.shape.width;
  image.height = spec.shape.height;
  image.channels = spec.shape.channels == 1 ? 1 : 3;
  image.pixels.resize(static_cast<size_t>(image.width) * image.height * image.channels);
  for (auto& p : image.pixels) p = static_cast<uint8_t>(rng());
  return time_calls([&] { (void)data::preprocess_image(image, spec); }, repetitions, warmup);
}

}  // namespace edgefm::models
