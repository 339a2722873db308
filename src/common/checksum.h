#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace edgefm {

// Lower-case hex SHA-256 of bytes / of a file's content (throws Error if unreadable).
std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);

}  // namespace edgefm
