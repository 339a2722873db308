#include "data/image.h"

#include <algorithm>
#include <climits>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <jpeglib.h>
// after jpeglib.h, which it needs
#include <jerror.h>
#include <png.h>

#include "common/error.h"

// libpng and libjpeg report errors by longjmp. Throwing a C++ exception through their C
// frames is undefined, and a longjmp that skips C++ objects with destructors (or that lands
// in a frame whose locals changed after setjmp) is too. So every setjmp below sits in a small
// noinline function whose locals are all trivial and unused after the jump; it returns false
// and the caller, which owns every buffer and the library structs (destroyed by guards),
// turns that into an Error. Each library call that can fail runs inside one of these.

namespace edgefm::data {
namespace {

std::string where(const std::string& name) { return "image '" + name + "'"; }

[[noreturn]] void fail_corrupt(const std::string& name, const char* format, const char* detail) {
  fail_expected(where(name), std::string("a complete, valid ") + format + " image",
                std::string("corrupt or truncated data (") + detail + ")");
}

void check_dimensions(const std::string& name, int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > kMaxImageSide || height > kMaxImageSide ||
      width * height > kMaxImagePixels) {
    fail_expected(where(name),
                  "sides in [1, " + std::to_string(kMaxImageSide) + "] and at most " +
                      std::to_string(kMaxImagePixels) + " pixels",
                  "absurd dimensions " + std::to_string(width) + "x" + std::to_string(height));
  }
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// ---------------------------------------------------------------- PNG decoding

struct PngContext {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t offset = 0;
  char message[256] = {};
  uint32_t width = 0, height = 0;
  int channels = 0;
  size_t rowbytes = 0;
};

void png_error_callback(png_structp png, png_const_charp message) {
  auto* ctx = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "libpng: %s", message ? message : "error");
  png_longjmp(png, 1);
}

void png_warning_callback(png_structp, png_const_charp) {}

void png_read_callback(png_structp png, png_bytep out, png_size_t count) {
  auto* ctx = static_cast<PngContext*>(png_get_io_ptr(png));
  if (count > ctx->size - ctx->offset) png_error(png, "unexpected end of data");
  std::memcpy(out, ctx->data + ctx->offset, count);
  ctx->offset += count;
}

// Reads the chunks up to the image data and sets the transformations to 8-bit grey, RGB or
// RGBA. Grey+alpha (also grey with a tRNS colour key) becomes RGBA, so DecodedImage only
// ever has 1, 3 or 4 channels and the alpha survives until preprocessing drops it.
[[gnu::noinline]] bool png_read_header(PngContext* ctx) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_set_read_fn(ctx->png, ctx, png_read_callback);
  png_read_info(ctx->png, ctx->info);
  ctx->width = png_get_image_width(ctx->png, ctx->info);
  ctx->height = png_get_image_height(ctx->png, ctx->info);
  const int color_type = png_get_color_type(ctx->png, ctx->info);
  const int bit_depth = png_get_bit_depth(ctx->png, ctx->info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ctx->png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(ctx->png);
  const bool has_trns = png_get_valid(ctx->png, ctx->info, PNG_INFO_tRNS) != 0;
  if (has_trns) png_set_tRNS_to_alpha(ctx->png);
  if (bit_depth == 16) png_set_strip_16(ctx->png);
  if (color_type == PNG_COLOR_TYPE_GRAY_ALPHA || (color_type == PNG_COLOR_TYPE_GRAY && has_trns)) {
    png_set_gray_to_rgb(ctx->png);
  }
  png_set_interlace_handling(ctx->png);
  png_read_update_info(ctx->png, ctx->info);
  ctx->channels = png_get_channels(ctx->png, ctx->info);
  ctx->rowbytes = png_get_rowbytes(ctx->png, ctx->info);
  return true;
}

[[gnu::noinline]] bool png_read_pixels(PngContext* ctx, png_bytepp rows) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_read_image(ctx->png, rows);
  png_read_end(ctx->png, nullptr);  // up to IEND: a file cut after its pixels is refused too
  return true;
}

DecodedImage decode_png(const uint8_t* bytes, size_t size, const std::string& name) {
  // The header first, from the bytes: IHDR is always the first chunk.
  if (size >= 24 && std::memcmp(bytes + 12, "IHDR", 4) == 0) {
    check_dimensions(name, read_be32(bytes + 16), read_be32(bytes + 20));
  }
  PngContext ctx;
  ctx.data = bytes;
  ctx.size = size;
  ctx.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_callback,
                                   png_warning_callback);
  if (!ctx.png) throw Error(where(name) + ": cannot initialise libpng");
  struct Guard {
    PngContext* ctx;
    ~Guard() { png_destroy_read_struct(&ctx->png, ctx->info ? &ctx->info : nullptr, nullptr); }
  } guard{&ctx};
  ctx.info = png_create_info_struct(ctx.png);
  if (!ctx.info) throw Error(where(name) + ": cannot initialise libpng");
  // Our own limits apply (checked below); libpng's default 1,000,000 per side is looser.
  png_set_user_limits(ctx.png, 0x7fffffff, 0x7fffffff);

  if (!png_read_header(&ctx)) fail_corrupt(name, "PNG", ctx.message);
  check_dimensions(name, ctx.width, ctx.height);
  const auto width = static_cast<size_t>(ctx.width);
  if ((ctx.channels != 1 && ctx.channels != 3 && ctx.channels != 4) ||
      ctx.rowbytes != width * static_cast<size_t>(ctx.channels)) {
    fail_expected(where(name), "a PNG decodable to 8-bit grey, RGB or RGBA",
                  std::to_string(ctx.channels) + " channels, " + std::to_string(ctx.rowbytes) +
                      " bytes per row");
  }
  DecodedImage image;
  image.width = static_cast<int>(ctx.width);
  image.height = static_cast<int>(ctx.height);
  image.channels = ctx.channels;
  image.pixels.resize(ctx.rowbytes * ctx.height);
  std::vector<png_bytep> rows(ctx.height);
  for (uint32_t y = 0; y < ctx.height; ++y) rows[y] = image.pixels.data() + y * ctx.rowbytes;
  if (!png_read_pixels(&ctx, rows.data())) fail_corrupt(name, "PNG", ctx.message);
  return image;
}

// ---------------------------------------------------------------- JPEG decoding

struct JpegError {
  jpeg_error_mgr mgr;  // first: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

struct JpegContext {
  jpeg_decompress_struct cinfo;
  JpegError error;
  int expected_components;
};

[[noreturn]] void jpeg_error_exit(j_common_ptr cinfo) {
  auto* error = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

// Warnings (level -1) are corrupt data that libjpeg would paper over (a premature end of the
// file is filled with grey): all are errors here except the harmless ones listed.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  const int code = cinfo->err->msg_code;
  if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_ADOBE_XFORM || code == JWRN_JFIF_MAJOR ||
      code == JWRN_BOGUS_ICC) {
    return;
  }
  jpeg_error_exit(cinfo);
}

void jpeg_silent_output(j_common_ptr) {}

[[gnu::noinline]] bool jpeg_read_header_phase(JpegContext* ctx, const uint8_t* bytes,
                                              size_t size) {
  if (setjmp(ctx->error.jump)) return false;
  jpeg_create_decompress(&ctx->cinfo);
  jpeg_mem_src(&ctx->cinfo, bytes, static_cast<unsigned long>(size));
  jpeg_read_header(&ctx->cinfo, TRUE);
  return true;
}

[[gnu::noinline]] bool jpeg_read_pixels(JpegContext* ctx, uint8_t* pixels) {
  if (setjmp(ctx->error.jump)) return false;
  jpeg_decompress_struct* cinfo = &ctx->cinfo;
  jpeg_start_decompress(cinfo);
  if (cinfo->output_width != cinfo->image_width || cinfo->output_height != cinfo->image_height ||
      cinfo->output_components != ctx->expected_components) {
    std::snprintf(ctx->error.message, sizeof ctx->error.message,
                  "unexpected output geometry %ux%u with %d components", cinfo->output_width,
                  cinfo->output_height, cinfo->output_components);
    return false;
  }
  const size_t stride = size_t{cinfo->output_width} * static_cast<size_t>(cinfo->output_components);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = pixels + size_t{cinfo->output_scanline} * stride;
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
      std::snprintf(ctx->error.message, sizeof ctx->error.message, "no scanline returned");
      return false;
    }
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

DecodedImage decode_jpeg(const uint8_t* bytes, size_t size, const std::string& name) {
  JpegContext ctx;
  std::memset(&ctx, 0, sizeof ctx);
  ctx.cinfo.err = jpeg_std_error(&ctx.error.mgr);
  ctx.error.mgr.error_exit = jpeg_error_exit;
  ctx.error.mgr.emit_message = jpeg_emit_message;
  ctx.error.mgr.output_message = jpeg_silent_output;
  struct Guard {
    jpeg_decompress_struct* cinfo;
    ~Guard() { jpeg_destroy_decompress(cinfo); }  // safe on a struct never created (mem null)
  } guard{&ctx.cinfo};

  if (!jpeg_read_header_phase(&ctx, bytes, size)) {
    fail_corrupt(name, "JPEG", ctx.error.message);
  }
  check_dimensions(name, ctx.cinfo.image_width, ctx.cinfo.image_height);
  switch (ctx.cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      ctx.cinfo.out_color_space = JCS_GRAYSCALE;
      ctx.expected_components = 1;
      break;
    case JCS_YCbCr:
    case JCS_RGB:
      ctx.cinfo.out_color_space = JCS_RGB;
      ctx.expected_components = 3;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      fail_expected(where(name), "a greyscale or colour (YCbCr/RGB) JPEG", "a CMYK JPEG");
    default:
      fail_expected(where(name), "a greyscale or colour (YCbCr/RGB) JPEG",
                    "colour space " + std::to_string(static_cast<int>(ctx.cinfo.jpeg_color_space)));
  }
  DecodedImage image;
  image.width = static_cast<int>(ctx.cinfo.image_width);
  image.height = static_cast<int>(ctx.cinfo.image_height);
  image.channels = ctx.expected_components;
  image.pixels.resize(size_t{ctx.cinfo.image_width} * ctx.cinfo.image_height *
                      static_cast<size_t>(image.channels));
  if (!jpeg_read_pixels(&ctx, image.pixels.data())) {
    fail_corrupt(name, "JPEG", ctx.error.message);
  }
  return image;
}

// ---------------------------------------------------------------- PNG encoding

struct PngWriter {
  png_structp png = nullptr;
  png_infop info = nullptr;
  FILE* file = nullptr;
  char message[256] = {};
};

void png_write_error_callback(png_structp png, png_const_charp message) {
  auto* writer = static_cast<PngWriter*>(png_get_error_ptr(png));
  std::snprintf(writer->message, sizeof writer->message, "libpng: %s", message ? message : "error");
  png_longjmp(png, 1);
}

[[gnu::noinline]] bool png_write_all(PngWriter* writer, const DecodedImage* image,
                                     png_bytepp rows) {
  if (setjmp(png_jmpbuf(writer->png))) return false;
  static constexpr int kColorTypes[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                        PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  png_init_io(writer->png, writer->file);
  png_set_IHDR(writer->png, writer->info, static_cast<png_uint_32>(image->width),
               static_cast<png_uint_32>(image->height), 8, kColorTypes[image->channels - 1],
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(writer->png, writer->info);
  png_write_image(writer->png, rows);
  png_write_end(writer->png, nullptr);
  return true;
}

// ---------------------------------------------------------------- resampling

void check_image(const DecodedImage& image, const std::string& context) {
  if (image.width < 1 || image.height < 1 || image.channels < 1 || image.channels > 4) {
    fail_expected(context, "an image of at least 1x1 with 1 to 4 channels",
                  std::to_string(image.width) + "x" + std::to_string(image.height) + " with " +
                      std::to_string(image.channels) + " channels");
  }
  const size_t expected = size_t(image.width) * size_t(image.height) * size_t(image.channels);
  if (image.pixels.size() != expected) {
    fail_expected(context, std::to_string(expected) + " pixel bytes",
                  std::to_string(image.pixels.size()));
  }
}

// One axis of a separable resampling, with exact integer weights: output index o (of `count`
// taken from position `first` of a line resized from `source` to `scaled` samples) is
// sum(weight * input[index]) / denominator over its `taps` entries at [o * taps, (o + 1) * taps)
// (the same number for every output, padded with zero weights, so loops branch predictably).
//  - same size: the sample itself (weight 1 of 1);
//  - enlarging: bilinear between pixel centres (half-pixel convention, edges clamped); the
//    source position ((2o + 1) * S - D) / (2D) is exact with denominator 2D;
//  - shrinking: area average: the output sample covers [o * S / D, (o + 1) * S / D) of the
//    source, each source pixel weighted by its overlap (in units of 1/D, denominator S), so an
//    integer factor gives the exact block mean.
struct Axis {
  int taps = 1;
  std::vector<int> index;
  std::vector<int64_t> weight;
  int64_t denominator = 1;
};

Axis make_axis(int64_t source, int64_t scaled, int64_t first, int count) {
  std::vector<std::vector<std::pair<int64_t, int64_t>>> taps(static_cast<size_t>(count));
  for (int o = 0; o < count; ++o) {
    const int64_t at = first + o;
    auto& out = taps[static_cast<size_t>(o)];
    if (scaled == source) {
      out.push_back({at, 1});
    } else if (scaled > source) {
      const int64_t position = std::max<int64_t>(0, (2 * at + 1) * source - scaled);
      const int64_t i0 = position / (2 * scaled);
      const int64_t frac = position % (2 * scaled);
      out.push_back({i0, 2 * scaled - frac});
      out.push_back({std::min(i0 + 1, source - 1), frac});
    } else {
      const int64_t lo = at * source, hi = (at + 1) * source;  // in units of 1/scaled
      for (int64_t i = lo / scaled; i * scaled < hi; ++i) {
        const int64_t overlap = std::min((i + 1) * scaled, hi) - std::max(i * scaled, lo);
        if (overlap > 0) out.push_back({i, overlap});
      }
    }
  }
  Axis axis;
  axis.denominator = scaled == source ? 1 : scaled > source ? 2 * scaled : source;
  for (const auto& out : taps) axis.taps = std::max(axis.taps, static_cast<int>(out.size()));
  axis.index.reserve(taps.size() * axis.taps);
  axis.weight.reserve(taps.size() * axis.taps);
  for (const auto& out : taps) {
    for (int t = 0; t < axis.taps; ++t) {
      const bool real = t < static_cast<int>(out.size());
      axis.index.push_back(static_cast<int>(real ? out[t].first : out.back().first));
      axis.weight.push_back(real ? out[t].second : 0);
    }
  }
  return axis;
}

// Where the image lands on one output side: scaled to `scaled`, then either cropped
// (scaled >= target: output takes scaled positions [first, first + target)) or padded
// (scaled < target: output positions [offset, offset + scaled) hold the whole image).
struct Placement {
  int64_t scaled = 0;
  int64_t first = 0;   // first scaled position used
  int offset = 0;      // first output position written
  int count = 0;       // output positions written
};

Placement place(int64_t scaled, int target) {
  Placement p;
  p.scaled = scaled;
  if (scaled >= target) {
    p.first = (scaled - target) / 2;
    p.count = target;
  } else {
    p.offset = static_cast<int>((target - scaled) / 2);
    p.count = static_cast<int>(scaled);
  }
  return p;
}

int64_t rounded_ratio(int64_t a, int64_t b, int64_t c) {  // round(a * b / c), all positive
  return (2 * a * b + c) / (2 * c);
}

// One channel of interleaved pixels (`Stride` bytes apart, from offset `from`) into a plane.
template <int Stride>
void extract_strided(const uint8_t* __restrict pixels, size_t n, int from,
                     uint8_t* __restrict out) {
  pixels += from;
  for (size_t i = 0; i < n; ++i) out[i] = pixels[i * Stride];
}

void extract(const uint8_t* pixels, size_t n, int stride, int from, uint8_t* out) {
  switch (stride) {
    case 1: std::memcpy(out, pixels, n); break;
    case 2: extract_strided<2>(pixels, n, from, out); break;
    case 3: extract_strided<3>(pixels, n, from, out); break;
    default: extract_strided<4>(pixels, n, from, out); break;
  }
}

// ITU-R BT.601 luma, rounded to nearest (grey R = G = B stays exactly grey).
void luma(const uint8_t* __restrict pixels, size_t n, int stride, uint8_t* __restrict out) {
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* q = pixels + i * stride;
    out[i] = static_cast<uint8_t>((299u * q[0] + 587u * q[1] + 114u * q[2] + 500u) / 1000u);
  }
}

// Interleaved pixels to spec planes: grey <-> RGB by BT.601 luma, alpha dropped (kept only
// when 2 or 4 channels are asked; 255 when the image has none).
std::vector<uint8_t> to_planes(const DecodedImage& image, int channels) {
  const size_t n = size_t(image.width) * size_t(image.height);
  const int c = image.channels;
  const uint8_t* p = image.pixels.data();
  std::vector<uint8_t> planes(n * static_cast<size_t>(channels));
  const bool grey_source = c <= 2;
  const bool source_alpha = c == 2 || c == 4;
  const auto alpha = [&](uint8_t* out) {
    if (source_alpha) {
      extract(p, n, c, c - 1, out);
    } else {
      std::memset(out, 255, n);
    }
  };
  if (channels <= 2) {
    if (grey_source) {
      extract(p, n, c, 0, planes.data());
    } else {
      luma(p, n, c, planes.data());
    }
    if (channels == 2) alpha(planes.data() + n);
  } else {
    for (int k = 0; k < 3; ++k) extract(p, n, c, grey_source ? 0 : k, planes.data() + n * k);
    if (channels == 4) alpha(planes.data() + 3 * n);
  }
  return planes;
}

// round(sum / denominator) for sums below 2^53: a multiplication instead of a 64-bit
// division, corrected to the exact quotient.
struct Divider {
  int64_t denominator;
  double inverse;
  explicit Divider(int64_t d) : denominator(d), inverse(1.0 / static_cast<double>(d)) {}
  uint8_t operator()(int64_t sum) const {
    const int64_t q = sum + denominator / 2;
    int64_t r = static_cast<int64_t>(static_cast<double>(q) * inverse);
    if (r * denominator > q) {
      --r;
    } else if ((r + 1) * denominator <= q) {
      ++r;
    }
    return static_cast<uint8_t>(r);
  }
};

// The horizontal pass over one row of vertical sums (column x of the source at column[x - first]).
template <class Sum>
void resample_row(const Sum* __restrict column, int first, const Axis& ax, const Divider& divide,
                  uint8_t* __restrict out) {
  const int* index = ax.index.data();
  const int64_t* weight = ax.weight.data();
  const int taps = ax.taps;
  const size_t count = ax.index.size() / static_cast<size_t>(taps);
  for (size_t x = 0; x < count; ++x, index += taps, weight += taps) {
    int64_t sum = 0;
    for (int t = 0; t < taps; ++t) sum += weight[t] * column[index[t] - first];
    out[x] = divide(sum);
  }
}

// The vertical pass for output row y: sum of weight * source row over its taps, for the
// source columns [first, first + cols).
template <class Sum>
void sum_rows(const uint8_t* plane, int64_t width, int first, size_t cols, const Axis& ay, int y,
              Sum* __restrict column) {
  std::fill(column, column + cols, Sum{0});
  for (int t = y * ay.taps; t < (y + 1) * ay.taps; ++t) {
    const Sum weight = static_cast<Sum>(ay.weight[t]);
    if (weight == 0) continue;
    const uint8_t* __restrict row = plane + ay.index[t] * width + first;
    for (size_t x = 0; x < cols; ++x) column[x] += weight * row[x];
  }
}

}  // namespace

DecodedImage decode_image(const uint8_t* bytes, size_t size, const std::string& name) {
  static constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 8 && std::memcmp(bytes, kPngSignature, 8) == 0) return decode_png(bytes, size, name);
  if (size >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) {
    return decode_jpeg(bytes, size, name);
  }
  std::string got = "an empty file";
  if (size > 0) {
    got = std::to_string(size) + " bytes starting";
    for (size_t i = 0; i < std::min<size_t>(size, 4); ++i) {
      char hex[4];
      std::snprintf(hex, sizeof hex, " %02x", bytes[i]);
      got += hex;
    }
  }
  fail_expected(where(name), "a PNG or JPEG image", got);
}

DecodedImage read_image_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open image '" + path.string() + "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("cannot read image '" + path.string() + "'");
  return decode_image(bytes.data(), bytes.size(), path.string());
}

std::vector<uint8_t> preprocess_image(const DecodedImage& image, const SampleSpec& spec) {
  const std::string context = "image preprocessing";
  if (spec.modality != Modality::image) {
    fail_expected(context, "an image sample spec", spec.describe());
  }
  validate(spec, context);
  check_image(image, context);
  const int channels = spec.shape.channels;
  const int height = spec.shape.height, width = spec.shape.width;
  const int64_t h = image.height, w = image.width;

  std::vector<uint8_t> planes = to_planes(image, channels);
  if (h == height && w == width) return planes;

  int64_t scaled_h = height, scaled_w = width;  // "squash"
  const std::string& mode = spec.image.resize_mode;
  if (mode == "shorter" || mode == "longer") {
    // Scale by the larger ratio (cover, then crop) or the smaller one (fit, then pad).
    const bool height_ratio_larger = int64_t{height} * w >= int64_t{width} * h;
    if (height_ratio_larger == (mode == "shorter")) {
      scaled_w = std::max<int64_t>(1, rounded_ratio(w, height, h));
    } else {
      scaled_h = std::max<int64_t>(1, rounded_ratio(h, width, w));
    }
    if (mode == "shorter") {
      scaled_w = std::max<int64_t>(scaled_w, width);
      scaled_h = std::max<int64_t>(scaled_h, height);
    } else {
      scaled_w = std::min<int64_t>(scaled_w, width);
      scaled_h = std::min<int64_t>(scaled_h, height);
    }
  }
  const Placement py = place(scaled_h, height), px = place(scaled_w, width);
  const Axis ay = make_axis(h, scaled_h, py.first, py.count);
  const Axis ax = make_axis(w, scaled_w, px.first, px.count);
  const int64_t denominator = ay.denominator * ax.denominator;

  // Vertical pass first, one output row at a time, over the source columns that the
  // horizontal pass reads; 32-bit sums when they cannot overflow (always, short of an extreme
  // aspect ratio in "shorter" mode).
  int x_first = ax.index.front(), x_last = ax.index.front();
  for (int index : ax.index) {
    x_first = std::min(x_first, index);
    x_last = std::max(x_last, index);
  }
  const size_t cols = static_cast<size_t>(x_last - x_first + 1);
  const bool narrow = ay.denominator <= INT32_MAX / 255;
  std::vector<int32_t> column32(narrow ? cols : 0);
  std::vector<int64_t> column64(narrow ? 0 : cols);
  const Divider divide(denominator);
  const size_t plane = static_cast<size_t>(height) * width;
  std::vector<uint8_t> out(plane * channels, static_cast<uint8_t>(spec.image.fill));
  for (int c = 0; c < channels; ++c) {
    const uint8_t* src = planes.data() + size_t(c) * size_t(h) * size_t(w);
    uint8_t* dst = out.data() + plane * c;
    for (int y = 0; y < py.count; ++y) {
      uint8_t* line = dst + size_t(py.offset + y) * width + px.offset;
      if (narrow) {
        sum_rows(src, w, x_first, cols, ay, y, column32.data());
        resample_row(column32.data(), x_first, ax, divide, line);
      } else {
        sum_rows(src, w, x_first, cols, ay, y, column64.data());
        resample_row(column64.data(), x_first, ax, divide, line);
      }
    }
  }
  return out;
}

void write_png(const std::filesystem::path& path, const DecodedImage& image) {
  check_image(image, "PNG '" + path.string() + "'");
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  PngWriter writer;
  writer.file = std::fopen(path.c_str(), "wb");
  if (!writer.file) throw Error("cannot write '" + path.string() + "'");
  struct Guard {
    PngWriter* w;
    ~Guard() {
      if (w->png) png_destroy_write_struct(&w->png, w->info ? &w->info : nullptr);
      if (w->file) std::fclose(w->file);
    }
  } guard{&writer};
  writer.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &writer, png_write_error_callback,
                                       png_warning_callback);
  if (writer.png) writer.info = png_create_info_struct(writer.png);
  if (!writer.png || !writer.info) throw Error("cannot write '" + path.string() + "': no memory");
  const size_t stride = size_t(image.width) * size_t(image.channels);
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  for (size_t y = 0; y < rows.size(); ++y) {
    rows[y] = const_cast<png_bytep>(image.pixels.data() + y * stride);
  }
  if (!png_write_all(&writer, &image, rows.data())) {
    throw Error("cannot write '" + path.string() + "': " + writer.message);
  }
  const bool flushed = std::fflush(writer.file) == 0 && !std::ferror(writer.file);
  const bool closed = std::fclose(writer.file) == 0;
  writer.file = nullptr;
  if (!flushed || !closed) throw Error("cannot write '" + path.string() + "'");
}

}  // namespace edgefm::data
