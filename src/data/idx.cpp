#include "data/idx.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <zlib.h>

#include "common/error.h"

namespace edgefm::data {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

uint32_t read_be32(const std::vector<uint8_t>& bytes, size_t offset) {
  return (uint32_t{bytes[offset]} << 24) | (uint32_t{bytes[offset + 1]} << 16) |
         (uint32_t{bytes[offset + 2]} << 8) | uint32_t{bytes[offset + 3]};
}

void append_be32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xff);
}

std::string hex32(uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%08x", value);
  return buffer;
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error("cannot write '" + path.string() + "'");
}

}  // namespace

namespace {

// A gzip bomb inflates to far more than its header says: a 1 MB file can hold 1 GiB of
// zeros. Inflation is bounded by what the header announces, and absolutely.
constexpr uint64_t kMaxInflatedBytes = uint64_t{4} << 30;
// Bytes allowed beyond the header's size, so a little trailing data still gets the readers'
// own "trailing data" message.
constexpr uint64_t kInflateSlack = 64 << 10;

// The most bytes the whole content may have, given its first bytes (the IDX header).
struct SizeBound {
  size_t header_bytes = 0;  // 0: no header-based bound
  std::function<uint64_t(const uint8_t* header)> limit;
};

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path.string() + "'");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// `bytes` as they are, or inflated when they start with the gzip magic.
std::vector<uint8_t> maybe_inflate(const uint8_t* bytes, size_t size, const std::string& name,
                                   const SizeBound& bound) {
  if (size < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return {bytes, bytes + size};

  z_stream stream{};
  if (inflateInit2(&stream, 15 + 32) != Z_OK) throw Error("zlib init failed");
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(256 << 10);
  uint64_t limit = kMaxInflatedBytes;
  bool header_seen = bound.header_bytes == 0;
  stream.next_in = const_cast<uint8_t*>(bytes);
  stream.avail_in = static_cast<uInt>(size);
  int status = Z_OK;
  while (status != Z_STREAM_END) {
    stream.next_out = chunk.data();
    stream.avail_out = static_cast<uInt>(chunk.size());
    status = inflate(&stream, Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END) {
      inflateEnd(&stream);
      throw Error("'" + name + "': corrupt or truncated gzip data (" +
                  (stream.msg ? stream.msg : "unexpected end of stream") + ")");
    }
    out.insert(out.end(), chunk.data(), chunk.data() + (chunk.size() - stream.avail_out));
    if (!header_seen && out.size() >= bound.header_bytes) {
      header_seen = true;
      limit = std::min(limit, bound.limit(out.data()) + kInflateSlack);
    }
    if (out.size() > limit) {
      inflateEnd(&stream);
      throw Error("'" + name + "': gzip data inflates beyond " + std::to_string(limit) +
                  " bytes" +
                  (limit < kMaxInflatedBytes ? " (what its header announces, plus " +
                                                   std::to_string(kInflateSlack) + " bytes)"
                                             : " (the limit)"));
    }
    if (status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
      inflateEnd(&stream);
      throw Error("'" + name + "': truncated gzip data");
    }
  }
  inflateEnd(&stream);
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// IDX images: magic, count, rows, cols, then count * rows * cols bytes. A header that is
// wrong (magic, sides) bounds the content to the header; the reader then says what is wrong.
const SizeBound kImagesBound{16, [](const uint8_t* h) -> uint64_t {
  const uint32_t rows = be32(h + 8), cols = be32(h + 12);
  if (be32(h) != kImagesMagic || rows == 0 || cols == 0 || rows > 4096 || cols > 4096) return 16;
  return 16 + uint64_t{be32(h + 4)} * rows * cols;
}};

// IDX labels: magic, count, then count bytes.
const SizeBound kLabelsBound{8, [](const uint8_t* h) -> uint64_t {
  if (be32(h) != kLabelsMagic) return 8;
  return 8 + uint64_t{be32(h + 4)};
}};

}  // namespace

std::vector<uint8_t> read_maybe_gzipped(const std::filesystem::path& path) {
  const auto raw = read_file_bytes(path);
  return maybe_inflate(raw.data(), raw.size(), path.string(), SizeBound{});
}

IdxImages read_idx_images(const std::filesystem::path& path) {
  const auto raw = read_file_bytes(path);
  return parse_idx_images(raw.data(), raw.size(), path.string());
}

std::vector<uint8_t> read_idx_labels(const std::filesystem::path& path) {
  const auto raw = read_file_bytes(path);
  return parse_idx_labels(raw.data(), raw.size(), path.string());
}

IdxImages parse_idx_images(const uint8_t* content, size_t size, const std::string& name) {
  auto bytes = maybe_inflate(content, size, name, kImagesBound);
  const std::string where = "IDX images '" + name + "'";
  uint32_t magic = bytes.size() >= 4 ? read_be32(bytes, 0) : 0;
  if (bytes.size() >= 4 && magic != kImagesMagic) {
    fail_expected(where, "magic " + hex32(kImagesMagic) + " (unsigned-byte 3-D images)",
                  hex32(magic) + (magic == kLabelsMagic ? " (a labels file)" : ""));
  }
  if (bytes.size() < 16) {
    fail_expected(where, "a 16-byte header", std::to_string(bytes.size()) + " bytes");
  }
  IdxImages images;
  images.count = read_be32(bytes, 4);
  images.rows = read_be32(bytes, 8);
  images.cols = read_be32(bytes, 12);
  if (images.rows == 0 || images.cols == 0 || images.rows > 4096 || images.cols > 4096) {
    fail_expected(where, "image sides in 1..4096",
                  std::to_string(images.rows) + "x" + std::to_string(images.cols));
  }
  uint64_t expected = uint64_t{images.count} * images.rows * images.cols;
  uint64_t present = bytes.size() - 16;
  if (present < expected) {
    fail_expected(where + " is truncated",
                  std::to_string(expected) + " pixel bytes for " + std::to_string(images.count) +
                      " images of " + std::to_string(images.rows) + "x" +
                      std::to_string(images.cols),
                  std::to_string(present));
  }
  if (present > expected) {
    fail_expected(where, std::to_string(expected) + " pixel bytes",
                  std::to_string(present) + " (trailing data)");
  }
  images.pixels.assign(bytes.begin() + 16, bytes.end());
  return images;
}

std::vector<uint8_t> parse_idx_labels(const uint8_t* content, size_t size,
                                      const std::string& name) {
  auto bytes = maybe_inflate(content, size, name, kLabelsBound);
  const std::string where = "IDX labels '" + name + "'";
  uint32_t magic = bytes.size() >= 4 ? read_be32(bytes, 0) : 0;
  if (bytes.size() >= 4 && magic != kLabelsMagic) {
    fail_expected(where, "magic " + hex32(kLabelsMagic) + " (unsigned-byte 1-D labels)",
                  hex32(magic) + (magic == kImagesMagic ? " (an images file)" : ""));
  }
  if (bytes.size() < 8) {
    fail_expected(where, "an 8-byte header", std::to_string(bytes.size()) + " bytes");
  }
  uint32_t count = read_be32(bytes, 4);
  uint64_t present = bytes.size() - 8;
  if (present < count) {
    fail_expected(where + " is truncated", std::to_string(count) + " labels",
                  std::to_string(present));
  }
  if (present > count) {
    fail_expected(where, std::to_string(count) + " label bytes",
                  std::to_string(present) + " (trailing data)");
  }
  return {bytes.begin() + 8, bytes.end()};
}

Dataset load_idx_pair(const std::filesystem::path& images_path,
                      const std::filesystem::path& labels_path,
                      std::vector<std::string> class_names, std::string name) {
  auto images = read_idx_images(images_path);
  auto labels = read_idx_labels(labels_path);
  if (labels.size() != images.count) {
    fail_expected("IDX pair '" + images_path.string() + "' / '" + labels_path.string() + "'",
                  "as many labels as images (" + std::to_string(images.count) + ")",
                  std::to_string(labels.size()) + " labels");
  }
  Dataset dataset;
  dataset.name = std::move(name);
  dataset.spec.shape = {1, static_cast<int>(images.rows), static_cast<int>(images.cols)};
  dataset.samples = std::move(images.pixels);
  dataset.class_names = std::move(class_names);
  dataset.labels.reserve(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    if (!dataset.class_names.empty() && labels[i] >= dataset.class_names.size()) {
      fail_expected("IDX labels '" + labels_path.string() + "' at index " + std::to_string(i),
                    "a label below " + std::to_string(dataset.class_names.size()) +
                        " (the number of class names)",
                    std::to_string(labels[i]));
    }
    dataset.labels.push_back(labels[i]);
  }
  return dataset;
}

void write_idx_images(const std::filesystem::path& path, const IdxImages& images) {
  std::string bytes;
  append_be32(bytes, kImagesMagic);
  append_be32(bytes, images.count);
  append_be32(bytes, images.rows);
  append_be32(bytes, images.cols);
  bytes.append(images.pixels.begin(), images.pixels.end());
  write_bytes(path, bytes);
}

void write_idx_labels(const std::filesystem::path& path, const std::vector<uint8_t>& labels) {
  std::string bytes;
  append_be32(bytes, kLabelsMagic);
  append_be32(bytes, static_cast<uint32_t>(labels.size()));
  bytes.append(labels.begin(), labels.end());
  write_bytes(path, bytes);
}

}  // namespace edgefm::data
