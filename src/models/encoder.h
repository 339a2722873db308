#pragma once
// The image-encoder interface every model implements: the FM, each edge architecture, and a
// TorchScript export of a real FM. Torch stays behind it: this header does not include torch.
#include <cstdint>
#include <string>
#include <vector>

#include "data/sample_spec.h"

namespace edgefm::models {

using ImageShape = data::TensorShape;

class ImageEncoder {
 public:
  virtual ~ImageEncoder() = default;
  ImageEncoder() = default;
  ImageEncoder(const ImageEncoder&) = delete;
  ImageEncoder& operator=(const ImageEncoder&) = delete;

  virtual std::string arch() const = 0;
  virtual int embedding_dim() const = 0;
  // What a sample is for this model (stored in its artifact); input_shape() is its shape.
  virtual const data::SampleSpec& spec() const = 0;
  ImageShape input_shape() const { return spec().shape; }
  virtual int64_t parameter_count() const = 0;
  // Multiply-adds of one forward pass of one image (0 when unknown, e.g. TorchScript).
  virtual int64_t multiply_adds() const = 0;

  // samples: n x C x H x W floats in [0, 1] (the sample tensors; the model applies the
  // spec's mean/std itself); out: n x embedding_dim(), each row L2-normalised.
  // Safe to call from several threads at once.
  virtual void embed(const float* images, int64_t n, float* out) const = 0;
};

// Embeds n images in batches of `batch_size`; returns n x embedding_dim floats.
std::vector<float> embed_all(const ImageEncoder& encoder, const float* images, int64_t n,
                             int64_t batch_size = 256);

struct LatencyStats {
  double mean_ms = 0, median_ms = 0, p99_ms = 0, stdev_ms = 0;
  int repetitions = 0;
};
// Times embed() of `batch` zero images: `warmup` untimed runs, then `repetitions` timed ones.
LatencyStats measure_latency(const ImageEncoder& encoder, int64_t batch, int repetitions = 200,
                             int warmup = 20);

// Times the spec's front end on one raw sample: for audio, the whole preprocessing of a
// recording at the spec's rate and window (mix-down, window, log-mel) on a seeded noise
// signal; for images, preprocessing a decoded image of the spec's size (a copy). This is
// what the edge adds to the model's forward for each raw sample.
LatencyStats measure_frontend_latency(const data::SampleSpec& spec, int repetitions = 200,
                                      int warmup = 20);

}  // namespace edgefm::models
