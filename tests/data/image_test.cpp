#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <chrono>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "support/error_of.h"
#include "common/error.h"
#include "data/image.h"
#include "data/sample_spec.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace edgefm;
using namespace edgefm::data;

namespace {

// ---- writers that use the libraries directly, for the inputs write_png cannot make.
// Their setjmp frames hold only trivial locals, as in the code under test.

struct RawPng {
  uint32_t width = 0, height = 0;
  int bit_depth = 8;
  int color_type = PNG_COLOR_TYPE_GRAY;
  int interlace = PNG_INTERLACE_NONE;
  std::vector<std::vector<uint8_t>> rows;  // packed as PNG stores them (16-bit big-endian)
  std::vector<png_color> palette;
  std::vector<png_byte> trans;             // palette alpha values
  bool grey_key = false;                   // tRNS colour key for grey images
  png_uint_16 grey_key_value = 0;
};

[[gnu::noinline]] bool write_raw_png_file(FILE* file, const RawPng* spec, png_bytepp rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, spec->width, spec->height, spec->bit_depth, spec->color_type,
               spec->interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!spec->palette.empty()) {
    png_set_PLTE(png, info, spec->palette.data(), static_cast<int>(spec->palette.size()));
  }
  if (!spec->trans.empty()) {
    png_set_tRNS(png, info, spec->trans.data(), static_cast<int>(spec->trans.size()), nullptr);
  }
  png_color_16 key{};
  key.gray = spec->grey_key_value;
  if (spec->grey_key) png_set_tRNS(png, info, nullptr, 0, &key);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

bool write_raw_png(const fs::path& path, RawPng spec) {
  std::vector<png_bytep> rows;
  for (auto& row : spec.rows) rows.push_back(row.data());
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) return false;
  const bool ok = write_raw_png_file(file, &spec, rows.data());
  return std::fclose(file) == 0 && ok;
}

struct JpegTestError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
};

[[noreturn]] void jpeg_test_error_exit(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<JpegTestError*>(cinfo->err)->jump, 1);
}

[[gnu::noinline]] bool write_jpeg_file(FILE* file, const DecodedImage* image, int quality) {
  jpeg_compress_struct cinfo;
  JpegTestError error;
  cinfo.err = jpeg_std_error(&error.mgr);
  error.mgr.error_exit = jpeg_test_error_exit;
  if (setjmp(error.jump)) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, file);
  cinfo.image_width = static_cast<JDIMENSION>(image->width);
  cinfo.image_height = static_cast<JDIMENSION>(image->height);
  cinfo.input_components = image->channels;
  cinfo.in_color_space = image->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  const size_t stride = size_t(image->width) * size_t(image->channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image->pixels.data() + cinfo.next_scanline * stride);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

bool write_jpeg(const fs::path& path, const DecodedImage& image, int quality = 95) {
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) return false;
  const bool ok = write_jpeg_file(file, &image, quality);
  return std::fclose(file) == 0 && ok;
}

// ---- helpers

DecodedImage make_image(int width, int height, int channels, std::vector<uint8_t> pixels) {
  DecodedImage image;
  image.width = width;
  image.height = height;
  image.channels = channels;
  image.pixels = std::move(pixels);
  return image;
}

DecodedImage noise_image(int width, int height, int channels, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> pixels(size_t(width) * height * channels);
  for (auto& p : pixels) p = static_cast<uint8_t>(rng() & 0xff);
  return make_image(width, height, channels, std::move(pixels));
}

// Smooth colours (what JPEG keeps well).
DecodedImage gradient_image(int width, int height, int channels) {
  std::vector<uint8_t> pixels;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const int values[3] = {x * 255 / (width - 1), y * 255 / (height - 1),
                             (x + y) * 255 / (width + height - 2)};
      for (int c = 0; c < channels; ++c) pixels.push_back(static_cast<uint8_t>(values[c]));
    }
  }
  return make_image(width, height, channels, std::move(pixels));
}

std::vector<uint8_t> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

using edgefm::testing::error_of;

SampleSpec image_spec(int channels, int height, int width, std::string mode = "shorter",
                      int fill = 0) {
  SampleSpec spec;
  spec.shape = {channels, height, width};
  spec.image.resize_mode = std::move(mode);
  spec.image.fill = fill;
  return spec;
}

using Bytes = std::vector<uint8_t>;

class ImageTest : public ::testing::Test {
 protected:
  edgefm::testing::TempDir tmp{"image", ::testing::UnitTest::GetInstance()->current_test_info()->name()};
  fs::path dir() const { return tmp.path; }

  // Error from reading `path`; fails the test unless it names the file.
  std::string refusal(const fs::path& path) {
    auto message = error_of([&] { read_image_file(path); });
    EXPECT_FALSE(message.empty()) << path << " was accepted";
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    return message;
  }
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------- decoding

TEST_F(ImageTest, PngRoundTripGreyRgbRgba) {
  for (int channels : {1, 3, 4}) {
    auto image = noise_image(7, 5, channels, 10u + channels);
    const auto path = dir() / ("rt" + std::to_string(channels) + ".png");
    write_png(path, image);
    auto back = read_image_file(path);
    EXPECT_EQ(back.width, 7);
    EXPECT_EQ(back.height, 5);
    EXPECT_EQ(back.channels, channels);
    EXPECT_EQ(back.pixels, image.pixels) << channels << " channels";
  }
}

TEST_F(ImageTest, FormatIsToldByContentNotName) {
  auto image = noise_image(4, 3, 3, 1);
  write_png(dir() / "really-a-png.jpg", image);
  EXPECT_EQ(read_image_file(dir() / "really-a-png.jpg").pixels, image.pixels);
  auto smooth = gradient_image(16, 16, 3);
  ASSERT_TRUE(write_jpeg(dir() / "really-a-jpeg.png", smooth));
  EXPECT_EQ(read_image_file(dir() / "really-a-jpeg.png").channels, 3);
}

TEST_F(ImageTest, PalettePngExpandsToRgbAndTransparencyToAlpha) {
  RawPng spec;
  spec.width = 3;
  spec.height = 2;
  spec.bit_depth = 2;  // packed: 4 pixels per byte
  spec.color_type = PNG_COLOR_TYPE_PALETTE;
  spec.palette = {{10, 20, 30}, {200, 100, 0}, {0, 0, 255}, {255, 255, 255}};
  // indices: row 0: 0 1 2, row 1: 3 2 1 (2 bits each, MSB first)
  spec.rows = {{0b00011000}, {0b11100100}};
  ASSERT_TRUE(write_raw_png(dir() / "pal.png", spec));
  auto image = read_image_file(dir() / "pal.png");
  EXPECT_EQ(image.channels, 3);
  EXPECT_EQ(image.pixels, (Bytes{10, 20, 30, 200, 100, 0, 0, 0, 255,  //
                                 255, 255, 255, 0, 0, 255, 200, 100, 0}));

  spec.trans = {0, 128};  // entries 2 and 3 stay opaque
  ASSERT_TRUE(write_raw_png(dir() / "pal-trns.png", spec));
  image = read_image_file(dir() / "pal-trns.png");
  EXPECT_EQ(image.channels, 4);
  EXPECT_EQ(image.pixels, (Bytes{10, 20, 30, 0, 200, 100, 0, 128, 0, 0, 255, 255,  //
                                 255, 255, 255, 255, 0, 0, 255, 255, 200, 100, 0, 128}));
}

TEST_F(ImageTest, SixteenBitPngReducedToEightBits) {
  RawPng grey;
  grey.width = 3;
  grey.height = 1;
  grey.bit_depth = 16;
  grey.rows = {{0x12, 0x34, 0xff, 0xff, 0x00, 0xff}};
  ASSERT_TRUE(write_raw_png(dir() / "g16.png", grey));
  auto image = read_image_file(dir() / "g16.png");
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.pixels, (Bytes{0x12, 0xff, 0x00}));

  RawPng rgba = grey;
  rgba.width = 1;
  rgba.color_type = PNG_COLOR_TYPE_RGB_ALPHA;
  rgba.rows = {{0xab, 0x01, 0x00, 0x02, 0x80, 0x00, 0x7f, 0xff}};
  ASSERT_TRUE(write_raw_png(dir() / "rgba16.png", rgba));
  image = read_image_file(dir() / "rgba16.png");
  EXPECT_EQ(image.channels, 4);
  EXPECT_EQ(image.pixels, (Bytes{0xab, 0x00, 0x80, 0x7f}));
}

TEST_F(ImageTest, LowBitGreyExpandsAndGreyAlphaBecomesRgba) {
  RawPng bits;
  bits.width = 4;
  bits.height = 1;
  bits.bit_depth = 1;
  bits.rows = {{0b10100000}};
  ASSERT_TRUE(write_raw_png(dir() / "g1.png", bits));
  auto image = read_image_file(dir() / "g1.png");
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.pixels, (Bytes{255, 0, 255, 0}));

  RawPng ga;
  ga.width = 2;
  ga.height = 1;
  ga.color_type = PNG_COLOR_TYPE_GRAY_ALPHA;
  ga.rows = {{40, 255, 90, 7}};
  ASSERT_TRUE(write_raw_png(dir() / "ga.png", ga));
  image = read_image_file(dir() / "ga.png");
  EXPECT_EQ(image.channels, 4);
  EXPECT_EQ(image.pixels, (Bytes{40, 40, 40, 255, 90, 90, 90, 7}));

  RawPng keyed = bits;  // grey with a tRNS colour key: transparent where the value is 0
  keyed.grey_key = true;
  keyed.grey_key_value = 0;
  ASSERT_TRUE(write_raw_png(dir() / "gkey.png", keyed));
  image = read_image_file(dir() / "gkey.png");
  EXPECT_EQ(image.channels, 4);
  EXPECT_EQ(image.pixels, (Bytes{255, 255, 255, 255, 0, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0}));
}

TEST_F(ImageTest, InterlacedPng) {
  auto noise = noise_image(9, 7, 3, 5);
  RawPng spec;
  spec.width = 9;
  spec.height = 7;
  spec.color_type = PNG_COLOR_TYPE_RGB;
  spec.interlace = PNG_INTERLACE_ADAM7;
  for (int y = 0; y < 7; ++y) {
    spec.rows.emplace_back(noise.pixels.begin() + y * 27, noise.pixels.begin() + (y + 1) * 27);
  }
  ASSERT_TRUE(write_raw_png(dir() / "adam7.png", spec));
  EXPECT_EQ(read_image_file(dir() / "adam7.png").pixels, noise.pixels);
}

TEST_F(ImageTest, JpegColourAndGreyWithinTolerance) {
  for (int channels : {3, 1}) {
    auto image = gradient_image(40, 24, channels);
    const auto path = dir() / ("j" + std::to_string(channels) + ".jpg");
    ASSERT_TRUE(write_jpeg(path, image, 95));
    auto back = read_image_file(path);
    ASSERT_EQ(back.width, 40);
    ASSERT_EQ(back.height, 24);
    ASSERT_EQ(back.channels, channels);
    ASSERT_EQ(back.pixels.size(), image.pixels.size());
    int worst = 0;
    double total = 0;
    for (size_t i = 0; i < image.pixels.size(); ++i) {
      const int d = std::abs(int(back.pixels[i]) - int(image.pixels[i]));
      worst = std::max(worst, d);
      total += d;
    }
    EXPECT_LE(worst, 12) << channels << " channels";
    EXPECT_LE(total / image.pixels.size(), 2.0) << channels << " channels";
  }
}

TEST_F(ImageTest, DecodeFromMemoryNamesTheCaller) {
  write_png(dir() / "a.png", noise_image(3, 3, 1, 2));
  auto bytes = file_bytes(dir() / "a.png");
  EXPECT_EQ(decode_image(bytes.data(), bytes.size(), "request").width, 3);
  bytes.resize(bytes.size() / 2);
  auto message = error_of([&] { decode_image(bytes.data(), bytes.size(), "request"); });
  EXPECT_TRUE(contains(message, "image 'request'")) << message;
}

// ---------------------------------------------------------------- refusals

TEST_F(ImageTest, RefusesBytesThatAreNeitherPngNorJpeg) {
  write_bytes(dir() / "noise.bin", {0x00, 0x13, 0x37, 0x42, 0x99});
  auto message = refusal(dir() / "noise.bin");
  EXPECT_TRUE(contains(message, "expected a PNG or JPEG image")) << message;
  EXPECT_TRUE(contains(message, "00 13 37 42")) << message;

  std::ofstream(dir() / "notes.png") << "this is text, not a picture\n";
  message = refusal(dir() / "notes.png");
  EXPECT_TRUE(contains(message, "expected a PNG or JPEG image")) << message;

  write_bytes(dir() / "empty.png", {});
  message = refusal(dir() / "empty.png");
  EXPECT_TRUE(contains(message, "an empty file")) << message;

  message = error_of([&] { read_image_file(dir() / "missing.png"); });
  EXPECT_TRUE(contains(message, "cannot open")) << message;
  EXPECT_TRUE(contains(message, (dir() / "missing.png").string())) << message;
}

TEST_F(ImageTest, RefusesCorruptPng) {
  write_png(dir() / "ok.png", noise_image(20, 20, 3, 3));
  auto bytes = file_bytes(dir() / "ok.png");
  // The signature, then garbage.
  Bytes garbage(bytes.begin(), bytes.begin() + 8);
  for (int i = 0; i < 100; ++i) garbage.push_back(static_cast<uint8_t>(i * 37));
  write_bytes(dir() / "garbage.png", garbage);
  auto message = refusal(dir() / "garbage.png");
  EXPECT_TRUE(contains(message, "corrupt or truncated")) << message;
  // One flipped byte in the pixel data: the chunk CRC no longer matches.
  Bytes flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x55;
  write_bytes(dir() / "flipped.png", flipped);
  refusal(dir() / "flipped.png");
}

TEST_F(ImageTest, RefusesTruncatedPng) {
  write_png(dir() / "ok.png", noise_image(20, 20, 3, 4));
  auto bytes = file_bytes(dir() / "ok.png");
  write_bytes(dir() / "half.png", Bytes(bytes.begin(), bytes.begin() + bytes.size() / 2));
  auto message = refusal(dir() / "half.png");
  EXPECT_TRUE(contains(message, "corrupt or truncated")) << message;
  // Every pixel present, only the IEND chunk missing: still no partial success.
  write_bytes(dir() / "no-iend.png", Bytes(bytes.begin(), bytes.end() - 12));
  refusal(dir() / "no-iend.png");
  // Cut inside the header.
  write_bytes(dir() / "header.png", Bytes(bytes.begin(), bytes.begin() + 20));
  refusal(dir() / "header.png");
}

TEST_F(ImageTest, RefusesTruncatedJpeg) {
  ASSERT_TRUE(write_jpeg(dir() / "ok.jpg", gradient_image(64, 48, 3)));
  auto bytes = file_bytes(dir() / "ok.jpg");
  ASSERT_NO_THROW(read_image_file(dir() / "ok.jpg"));
  write_bytes(dir() / "half.jpg", Bytes(bytes.begin(), bytes.begin() + bytes.size() / 2));
  auto message = refusal(dir() / "half.jpg");
  EXPECT_TRUE(contains(message, "corrupt or truncated")) << message;
  EXPECT_TRUE(contains(message, "Premature end of JPEG file")) << message;
  // Only the end-of-image marker missing.
  write_bytes(dir() / "no-eoi.jpg", Bytes(bytes.begin(), bytes.end() - 2));
  refusal(dir() / "no-eoi.jpg");
  // Only the start.
  write_bytes(dir() / "soi.jpg", Bytes(bytes.begin(), bytes.begin() + 3));
  refusal(dir() / "soi.jpg");
}

TEST_F(ImageTest, RefusesAbsurdPngDimensionsFromTheHeader) {
  write_png(dir() / "ok.png", noise_image(1, 1, 1, 5));
  auto bytes = file_bytes(dir() / "ok.png");
  ASSERT_EQ(std::string(bytes.begin() + 12, bytes.begin() + 16), "IHDR");
  const auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  put32(16, 100000);
  put32(20, 100000);
  put32(29, static_cast<uint32_t>(crc32(0, bytes.data() + 12, 17)));  // a valid header chunk
  write_bytes(dir() / "huge.png", bytes);
  const auto start = std::chrono::steady_clock::now();
  auto message = refusal(dir() / "huge.png");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(contains(message, "absurd dimensions 100000x100000")) << message;
  EXPECT_LT(seconds, 0.5);

  put32(16, 0);  // zero width
  put32(20, 5);
  put32(29, static_cast<uint32_t>(crc32(0, bytes.data() + 12, 17)));
  write_bytes(dir() / "zero.png", bytes);
  EXPECT_TRUE(contains(refusal(dir() / "zero.png"), "absurd dimensions 0x5"));
}

TEST_F(ImageTest, RefusesAbsurdJpegDimensionsFromTheHeader) {
  ASSERT_TRUE(write_jpeg(dir() / "ok.jpg", gradient_image(16, 16, 3)));
  auto bytes = file_bytes(dir() / "ok.jpg");
  size_t sof = 0;
  for (size_t i = 2; i + 9 < bytes.size(); ++i) {
    if (bytes[i] == 0xff && bytes[i + 1] == 0xc0) {
      sof = i;
      break;
    }
  }
  ASSERT_GT(sof, 0u) << "no baseline SOF0 marker";
  // FF C0, length (2), precision (1), height (2), width (2)
  bytes[sof + 5] = 0xfd;  // 65000 = 0xfde8
  bytes[sof + 6] = 0xe8;
  bytes[sof + 7] = 0xfd;
  bytes[sof + 8] = 0xe8;
  write_bytes(dir() / "huge.jpg", bytes);
  const auto start = std::chrono::steady_clock::now();
  auto message = refusal(dir() / "huge.jpg");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(contains(message, "absurd dimensions 65000x65000")) << message;
  EXPECT_LT(seconds, 0.5);
}

TEST_F(ImageTest, WritePngNamesUnwritablePath) {
  fs::create_directories(dir() / "folder.png");
  auto message = error_of([&] { write_png(dir() / "folder.png", noise_image(2, 2, 1, 6)); });
  EXPECT_TRUE(contains(message, (dir() / "folder.png").string())) << message;
  message = error_of([&] { write_png(dir() / "bad.png", make_image(2, 2, 3, {1, 2, 3})); });
  EXPECT_TRUE(contains(message, "12 pixel bytes")) << message;
}

// ---------------------------------------------------------------- preprocessing

TEST(ImagePreprocess, SameSizeIsByteExact) {
  auto grey = noise_image(28, 28, 1, 7);
  EXPECT_EQ(preprocess_image(grey, default_image_spec()), grey.pixels);
  for (const char* mode : {"shorter", "longer", "squash"}) {
    EXPECT_EQ(preprocess_image(grey, image_spec(1, 28, 28, mode, 9)), grey.pixels) << mode;
  }
  // Colour: the same bytes, planar.
  auto rgb = make_image(2, 1, 3, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(preprocess_image(rgb, image_spec(3, 1, 2)), (Bytes{1, 4, 2, 5, 3, 6}));
}

TEST_F(ImageTest, SameSizeThroughAPngFileIsByteExact) {
  auto grey = noise_image(28, 28, 1, 8);
  write_png(dir() / "g.png", grey);
  EXPECT_EQ(preprocess_image(read_image_file(dir() / "g.png"), default_image_spec()), grey.pixels);
}

TEST(ImagePreprocess, HalvingGivesBlockMeans) {
  auto image = make_image(4, 4, 1,
                          {0,   10,  20,  33,   //
                           2,   12,  40,  41,   //
                           100, 101, 255, 255,  //
                           103, 105, 255, 254});
  // (0+10+2+12)/4 = 6; (20+33+40+41)/4 = 33.5 -> 34; 409/4 = 102.25 -> 102; 1019/4 -> 255
  for (const char* mode : {"shorter", "longer", "squash"}) {
    EXPECT_EQ(preprocess_image(image, image_spec(1, 2, 2, mode)), (Bytes{6, 34, 102, 255}))
        << mode;
  }
}

TEST(ImagePreprocess, NonIntegerShrinkWeighsByOverlap) {
  // 3 -> 2: output 0 covers source [0, 1.5), output 1 covers [1.5, 3).
  // (1*0 + 0.5*30) / 1.5 = 10; (0.5*30 + 1*90) / 1.5 = 70
  auto image = make_image(3, 1, 1, {0, 30, 90});
  EXPECT_EQ(preprocess_image(image, image_spec(1, 1, 2, "squash")), (Bytes{10, 70}));
}

TEST(ImagePreprocess, EnlargingIsBilinearBetweenPixelCentres) {
  // Output centres at source 0.25 - 0.5 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
  auto image = make_image(2, 1, 1, {0, 100});
  EXPECT_EQ(preprocess_image(image, image_spec(1, 1, 4, "squash")), (Bytes{0, 25, 75, 100}));
  // Both axes: 1x1 fills everything; 2x2 -> 4x4 corner values stay, centre is the mean.
  auto square = make_image(2, 2, 1, {0, 40, 80, 120});
  auto out = preprocess_image(square, image_spec(1, 4, 4));
  ASSERT_EQ(out.size(), 16u);
  EXPECT_EQ(out[0], 0);
  EXPECT_EQ(out[3], 40);
  EXPECT_EQ(out[12], 80);
  EXPECT_EQ(out[15], 120);
  EXPECT_EQ(out[5], 30);   // (0.75*0.75*0 + 0.75*0.25*40 + 0.25*0.75*80 + 0.0625*120) = 30
  EXPECT_EQ(out[10], 90);  // the mirror image: 0.0625*0 + 0.1875*40 + 0.1875*80 + 0.5625*120
}

TEST(ImagePreprocess, ShorterCropsTheCentre) {
  auto image = make_image(4, 2, 1, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(preprocess_image(image, image_spec(1, 2, 2, "shorter")), (Bytes{2, 3, 6, 7}));
  // Portrait: 2 wide, 4 high -> the middle rows.
  auto tall = make_image(2, 4, 1, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(preprocess_image(tall, image_spec(1, 2, 2, "shorter")), (Bytes{3, 4, 5, 6}));
}

TEST(ImagePreprocess, LongerPadsWithFill) {
  auto image = make_image(4, 2, 1, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(preprocess_image(image, image_spec(1, 4, 4, "longer", 77)),
            (Bytes{77, 77, 77, 77, 1, 2, 3, 4, 5, 6, 7, 8, 77, 77, 77, 77}));
  // Shrunk to 2x1 (means of 2x2 blocks: 3.5 -> 4, 5.5 -> 6), then a row of fill below.
  EXPECT_EQ(preprocess_image(image, image_spec(1, 2, 2, "longer", 9)), (Bytes{4, 6, 9, 9}));
  // Colour: every channel is padded with the fill.
  auto rgb = make_image(1, 2, 3, {10, 20, 30, 40, 50, 60});
  EXPECT_EQ(preprocess_image(rgb, image_spec(3, 2, 3, "longer", 5)),
            (Bytes{5, 10, 5, 5, 40, 5, 5, 20, 5, 5, 50, 5, 5, 30, 5, 5, 60, 5}));
}

TEST(ImagePreprocess, SquashScalesEachSide) {
  auto image = make_image(4, 2, 1, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(preprocess_image(image, image_spec(1, 2, 2, "squash")), (Bytes{2, 4, 6, 8}));
}

TEST(ImagePreprocess, RgbToGreyByBt601) {
  // 0.299*255 = 76.2; 0.587*255 = 149.7; 0.114*255 = 29.1;
  // 0.299*200 + 0.587*100 + 0.114*50 = 124.2
  auto rgb = make_image(4, 1, 3, {255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 100, 50});
  EXPECT_EQ(preprocess_image(rgb, image_spec(1, 1, 4)), (Bytes{76, 150, 29, 124}));
  // Alpha is dropped, not composited.
  auto rgba = make_image(2, 1, 4, {255, 0, 0, 0, 200, 100, 50, 10});
  EXPECT_EQ(preprocess_image(rgba, image_spec(1, 1, 2)), (Bytes{76, 124}));
  EXPECT_EQ(preprocess_image(rgba, image_spec(3, 1, 2)), (Bytes{255, 200, 0, 100, 0, 50}));
  // Kept when four channels are asked for; opaque when the image has none.
  EXPECT_EQ(preprocess_image(rgba, image_spec(4, 1, 2)),
            (Bytes{255, 200, 0, 100, 0, 50, 0, 10}));
  auto grey = make_image(1, 1, 1, {33});
  EXPECT_EQ(preprocess_image(grey, image_spec(4, 1, 1)), (Bytes{33, 33, 33, 255}));
  // Two channels: grey + alpha.
  EXPECT_EQ(preprocess_image(rgba, image_spec(2, 1, 2)), (Bytes{76, 124, 0, 10}));
}

TEST_F(ImageTest, GreyAlphaPngRoundTripsAsRgba) {
  write_png(dir() / "ga.png", make_image(2, 1, 2, {40, 255, 90, 7}));
  EXPECT_EQ(read_image_file(dir() / "ga.png").pixels, (Bytes{40, 40, 40, 255, 90, 90, 90, 7}));
}

TEST(ImagePreprocess, ExtremeAspectRatioKeepsExactSums) {
  // 1 wide, 2100 tall, "shorter" to 2 x 2048: the height scales to 4,300,800 rows (bilinear
  // weights out of 8,601,600, beyond 32-bit column sums), of which the middle 2 are kept.
  std::vector<uint8_t> ramp(2100);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<uint8_t>(i * 7 % 256);
  auto image = make_image(1, 2100, 1, ramp);
  auto out = preprocess_image(image, image_spec(1, 2, 2048));
  ASSERT_EQ(out.size(), 2u * 2048);
  const double scaled = 4300800, first = (scaled - 2) / 2;
  for (int y = 0; y < 2; ++y) {
    const double position = (first + y + 0.5) * 2100 / scaled - 0.5;
    const int i0 = static_cast<int>(position);
    const double f = position - i0;
    const double expected = ramp[i0] * (1 - f) + ramp[i0 + 1] * f;
    for (int x : {0, 1000, 2047}) EXPECT_NEAR(out[size_t(y) * 2048 + x], expected, 0.51) << y;
  }
  auto white = make_image(1, 2100, 1, std::vector<uint8_t>(2100, 255));
  auto all = preprocess_image(white, image_spec(1, 2, 2048));
  EXPECT_EQ(all, Bytes(2 * 2048, 255));
}

TEST(ImagePreprocess, GreyToRgbReplicates) {
  auto grey = make_image(2, 1, 1, {7, 200});
  EXPECT_EQ(preprocess_image(grey, image_spec(3, 1, 2)), (Bytes{7, 200, 7, 200, 7, 200}));
}

TEST(ImagePreprocess, RefusesAudioSpecsAndBrokenImages) {
  auto grey = make_image(2, 1, 1, {7, 200});
  auto message = error_of([&] { preprocess_image(grey, audio_spec(AudioPreprocess{})); });
  EXPECT_TRUE(contains(message, "expected an image sample spec")) << message;
  message = error_of([&] { preprocess_image(make_image(2, 2, 1, {1, 2, 3}), default_image_spec()); });
  EXPECT_TRUE(contains(message, "4 pixel bytes")) << message;
  message = error_of([&] { preprocess_image(grey, image_spec(1, 2, 2, "stretch")); });
  EXPECT_TRUE(contains(message, "resize_mode")) << message;
}

TEST_F(ImageTest, JpegToClipInputShape) {
  auto photo = gradient_image(640, 480, 3);
  ASSERT_TRUE(write_jpeg(dir() / "photo.jpg", photo));
  auto out = preprocess_image(read_image_file(dir() / "photo.jpg"), image_spec(3, 224, 224));
  ASSERT_EQ(out.size(), 3u * 224 * 224);
  // Red rises left to right; the crop keeps the centre, so it starts well above 0 and ends
  // well below 255 (columns 37..261 of a 299-wide resize, ~ 32..222).
  const auto red = [&](int y, int x) { return int(out[size_t(y) * 224 + x]); };
  EXPECT_NEAR(red(112, 0), 255 * 37.5 / 299, 6);
  EXPECT_NEAR(red(112, 223), 255 * 260.5 / 299, 6);
  // Green rises top to bottom over the full height.
  const auto green = [&](int y, int x) { return int(out[224 * 224 + size_t(y) * 224 + x]); };
  EXPECT_LT(green(0, 112), 6);
  EXPECT_GT(green(223, 112), 249);
}

}  // namespace
