#include "cloud/linear_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "common/error.h"

namespace edgefm::cloud {

namespace {

std::vector<float> random_unit_rows(uint64_t seed, int64_t rows, int64_t cols) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (auto& v : out) v = normal(rng);
  for (int64_t r = 0; r < rows; ++r) {
    double norm = 0;
    for (int64_t c = 0; c < cols; ++c) norm += double{out[r * cols + c]} * out[r * cols + c];
    float scale = static_cast<float>(1.0 / std::sqrt(norm));
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] *= scale;
  }
  return out;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace

LinearModelOptions linear_model_default_options() { return LinearModelOptions{}; }

LinearImageEncoder::LinearImageEncoder(const LinearModelOptions& options) : options_(options) {
  spec_.shape = options_.input_shape;
  if (options_.embedding_dim < 1 || options_.input_shape.numel() < 1) {
    fail_expected("linear stand-in model", "a positive embedding dim and image size",
                  std::to_string(options_.embedding_dim) + " and " +
                      std::to_string(options_.input_shape.numel()));
  }
  weights_ = random_unit_rows(options_.seed, options_.embedding_dim, options_.input_shape.numel());
}

void LinearImageEncoder::embed(const float* images, int64_t n, float* out) const {
  const auto start = std::chrono::steady_clock::now();
  const int64_t numel = options_.input_shape.numel();
  const int64_t dim = options_.embedding_dim;
  for (int64_t i = 0; i < n; ++i) {
    const float* x = images + i * numel;
    float* y = out + i * dim;
    double norm = 0;
    for (int64_t d = 0; d < dim; ++d) {
      const float* w = weights_.data() + d * numel;
      // Centre the pixels so a blank image does not map to a zero vector.
      double acc = 0;
      for (int64_t k = 0; k < numel; ++k) acc += double{w[k]} * (x[k] - 0.5f);
      y[d] = static_cast<float>(acc) + 1e-3f * static_cast<float>(d + 1);
      norm += double{y[d]} * y[d];
    }
    float scale = static_cast<float>(1.0 / std::sqrt(norm));
    for (int64_t d = 0; d < dim; ++d) y[d] *= scale;
  }
  if (options_.call_cost_us > 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(options_.call_cost_us));
  }
  if (options_.image_cost_us > 0) {
    auto until = start + std::chrono::microseconds(options_.image_cost_us * n);
    while (std::chrono::steady_clock::now() < until) {
    }
  }
}

std::vector<float> LookupTextEncoder::embed(const std::string& prompt) const {
  std::string text = lower(prompt);
  std::vector<float> sum(static_cast<size_t>(pool_.dim()), 0.0f);
  bool found = false;
  for (size_t i = 0; i < pool_.size(); ++i) {
    if (text.find(lower(pool_.name(i))) == std::string::npos) continue;
    found = true;
    for (int d = 0; d < pool_.dim(); ++d) sum[d] += pool_.vector(i)[d];
  }
  if (!found) {
    throw Error("text encoder: prompt '" + prompt + "' names no class the model knows");
  }
  double norm = 0;
  for (float v : sum) norm += double{v} * v;
  for (auto& v : sum) v = static_cast<float>(v / std::sqrt(norm));
  return sum;
}

models::FoundationModel make_linear_foundation_model(const LinearModelOptions& options,
                                                     const std::vector<std::string>& class_names) {
  models::FoundationModel fm;
  fm.image = std::make_shared<LinearImageEncoder>(options);
  auto vectors = random_unit_rows(options.seed + 1, static_cast<int64_t>(class_names.size()),
                                  options.embedding_dim);
  fm.pool = models::TextPool(options.embedding_dim);
  for (size_t i = 0; i < class_names.size(); ++i) {
    auto begin = vectors.begin() + static_cast<long>(i * options.embedding_dim);
    fm.pool.set(class_names[i], std::vector<float>(begin, begin + options.embedding_dim));
  }
  fm.text = std::make_shared<LookupTextEncoder>(fm.pool);
  fm.version = "linear-stand-in seed " + std::to_string(options.seed);
  return fm;
}

}  // namespace edgefm::cloud
