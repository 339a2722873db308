#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace edgefm {

// Lower-case hex SHA-256 of bytes / of a file's content (throws Error if unreadable).
std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);

// HMAC-SHA256 of `bytes` under `key`, lower-case hex.
std::string hmac_sha256_hex(std::string_view key, std::string_view bytes);

// Equality in a time that does not depend on where two strings differ (digests, tokens).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace edgefm
