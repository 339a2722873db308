#pragma once
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace edgefm {

// SHA-256 fed piece by piece (no copy of the whole input).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void add(const void* data, size_t size);
  void add(std::string_view bytes) { add(bytes.data(), bytes.size()); }
  std::string hex();  // lower-case hex; call once, at the end

 private:
  EVP_MD_CTX* context_;
};

// Lower-case hex SHA-256 of bytes / of a file's content (throws Error if unreadable).
std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);

// HMAC-SHA256 of `bytes` under `key`, lower-case hex.
std::string hmac_sha256_hex(std::string_view key, std::string_view bytes);

// Equality in a time that does not depend on where two strings differ (digests, tokens).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace edgefm
