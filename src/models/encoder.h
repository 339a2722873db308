#pragma once
// The image-encoder interface every model implements: the FM, each edge architecture, and a
// TorchScript export of a real FM. Torch stays behind it: this header does not include torch.
#include <cstdint>
#include <string>
#include <vector>

namespace edgefm::models {

struct ImageShape {
  int channels = 1;
  int height = 28;
  int width = 28;
  int64_t numel() const { return int64_t{channels} * height * width; }
};

class ImageEncoder {
 public:
  virtual ~ImageEncoder() = default;
  ImageEncoder() = default;
  ImageEncoder(const ImageEncoder&) = delete;
  ImageEncoder& operator=(const ImageEncoder&) = delete;

  virtual std::string arch() const = 0;
  virtual int embedding_dim() const = 0;
  virtual ImageShape input_shape() const = 0;
  virtual int64_t parameter_count() const = 0;
  // Multiply-adds of one forward pass of one image (0 when unknown, e.g. TorchScript).
  virtual int64_t multiply_adds() const = 0;

  // images: n x C x H x W floats in [0, 1]; out: n x embedding_dim(), each row L2-normalised.
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

}  // namespace edgefm::models
