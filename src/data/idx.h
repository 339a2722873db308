#pragma once
// IDX files (the MNIST format): big-endian magic 0x00000803 for unsigned-byte images
// (count, rows, cols) and 0x00000801 for unsigned-byte labels (count). Gzipped or not: the
// reader looks at the content, not at the name.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace edgefm::data {

struct IdxImages {
  uint32_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;
};

// Each throws Error naming the file and what was expected: wrong magic, truncated data,
// trailing bytes, implausible sizes.
IdxImages read_idx_images(const std::filesystem::path& path);
std::vector<uint8_t> read_idx_labels(const std::filesystem::path& path);
// The same checks on content in memory (gzipped or not); `name` stands for the file in
// error messages.
IdxImages parse_idx_images(const uint8_t* bytes, size_t size, const std::string& name);
std::vector<uint8_t> parse_idx_labels(const uint8_t* bytes, size_t size, const std::string& name);

// Images plus labels; also checks that the counts agree and that every label is a valid
// class index.
Dataset load_idx_pair(const std::filesystem::path& images, const std::filesystem::path& labels,
                      std::vector<std::string> class_names, std::string name = "idx");

// Whole file content, transparently gunzipped when it starts with the gzip magic; inflating
// beyond 4 GiB throws Error. (read_idx_images/labels bound inflation by the IDX header.)
std::vector<uint8_t> read_maybe_gzipped(const std::filesystem::path& path);

// Writes an uncompressed IDX pair (used by tests and by `edgefm` exports).
void write_idx_images(const std::filesystem::path& path, const IdxImages& images);
void write_idx_labels(const std::filesystem::path& path, const std::vector<uint8_t>& labels);

}  // namespace edgefm::data
