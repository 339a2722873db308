#pragma once
// A torch-free stand-in FM for protocol tests and for benchmarking the service itself: a
// fixed random linear projection of the pixels, L2-normalised, with a configurable cost per
// call (a sleep, like the fixed launch cost of a GPU batch) and per image (a busy wait on
// top of the real projection). Its text side maps a prompt that names classes of the pool
// to the normalised sum of their vectors. It knows nothing about images: the real FM
// (models::load_foundation_model) is what answers correctly.
#include <cstdint>
#include <string>
#include <vector>

#include "models/encoder.h"
#include "models/foundation.h"
#include "models/text_encoder.h"

namespace edgefm::cloud {

struct LinearModelOptions {
  models::ImageShape input_shape{1, 28, 28};
  int embedding_dim = 32;
  uint64_t seed = 1;
  int64_t call_cost_us = 0;   // slept once per embed() call
  int64_t image_cost_us = 0;  // spent per image per embed() call
};
LinearModelOptions linear_model_default_options();

class LinearImageEncoder final : public models::ImageEncoder {
 public:
  explicit LinearImageEncoder(const LinearModelOptions& options);
  std::string arch() const override { return "linear"; }
  int embedding_dim() const override { return options_.embedding_dim; }
  const data::SampleSpec& spec() const override { return spec_; }
  int64_t parameter_count() const override { return static_cast<int64_t>(weights_.size()); }
  int64_t multiply_adds() const override { return static_cast<int64_t>(weights_.size()); }
  void embed(const float* images, int64_t n, float* out) const override;

 private:
  LinearModelOptions options_;
  data::SampleSpec spec_;
  std::vector<float> weights_;  // embedding_dim x numel
};

class LookupTextEncoder final : public models::TextEncoder {
 public:
  explicit LookupTextEncoder(models::TextPool pool) : pool_(std::move(pool)) {}
  int embedding_dim() const override { return pool_.dim(); }
  // The normalised sum of the vectors of the pool classes named in the prompt (case
  // insensitive); throws Error when it names none.
  std::vector<float> embed(const std::string& prompt) const override;

 private:
  models::TextPool pool_;
};

// image: LinearImageEncoder; pool: one seeded random vector per class name; text:
// LookupTextEncoder over that pool; version "linear-stand-in seed <seed>".
models::FoundationModel make_linear_foundation_model(const LinearModelOptions& options,
                                                     const std::vector<std::string>& class_names);

}  // namespace edgefm::cloud
