#pragma once
// The image-encoder interface every model implements: the FM, each edge architecture, and a
// TorchScript export of a real FM. Torch stays behind it: this header does not include torch.
#include <cstdint>
#include <string>

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

}  // namespace edgefm::models
