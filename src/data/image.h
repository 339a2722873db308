#pragma once
// Encoded images (PNG, JPEG) to sample tensors. Decoding uses Debian's libpng and
// libjpeg-turbo; the format is told by the content, not the file name.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/sample_spec.h"

namespace edgefm::data {

// 8 bits per channel, rows top to bottom, channels interleaved (HWC): 1 grey, 3 RGB, or 4 RGBA.
struct DecodedImage {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels
};

// Largest image the decoders accept (per side and in pixels): bigger ones are refused
// from their header, before any pixel is decoded.
constexpr int kMaxImageSide = 16384;
constexpr int64_t kMaxImagePixels = int64_t{64} << 20;

// Throws Error naming `name` (a file name or "request") and what was wrong: not PNG or JPEG,
// corrupt or truncated data, absurd dimensions. 16-bit PNGs are reduced to 8 bits; palette
// and grey+alpha are expanded (palette to RGB, or RGBA with a tRNS chunk; grey+alpha and grey
// with a tRNS key to RGBA, so the alpha survives until preprocessing). A file cut anywhere,
// even after its last pixel (no IEND / EOI), is refused: no partial images. CMYK JPEGs are
// refused.
DecodedImage decode_image(const uint8_t* bytes, size_t size, const std::string& name);
DecodedImage read_image_file(const std::filesystem::path& path);

// The image preprocessing of `spec` (modality image): convert to spec.shape.channels (grey
// <-> RGB by ITU-R BT.601 luma, alpha dropped), resize by spec.image.resize_mode with
// bilinear interpolation (area averaging when shrinking), centre-crop or pad to H x W.
// Returns C x H x W bytes (the stored sample tensor). Exact integer arithmetic: same size
// copies the bytes, an integer downscale gives the rounded block mean; 2 channels asked give
// grey + alpha, 4 give RGBA (alpha 255 when the image has none).
std::vector<uint8_t> preprocess_image(const DecodedImage& image, const SampleSpec& spec);

// Writes an 8-bit PNG (tests and the data set export scripts): 1, 2 (grey+alpha), 3 or 4
// channels. Throws Error naming the path when it cannot.
void write_png(const std::filesystem::path& path, const DecodedImage& image);

}  // namespace edgefm::data
