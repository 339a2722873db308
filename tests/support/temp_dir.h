#pragma once
// Scratch folders for tests: unique per process and call, empty when handed out.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>

namespace edgefm::testing {

// <tmp>/edgefm-<prefix>-<name>-<pid>-<n>, removed first and created empty.
inline std::filesystem::path fresh_dir(const std::string& prefix, const std::string& name) {
  static std::atomic<int> counter{0};
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("edgefm-" + prefix + "-" + name + "-" + std::to_string(::getpid()) + "-" +
       std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A fresh folder, removed with the object.
struct TempDir {
  std::filesystem::path path;
  TempDir(const std::string& prefix, const std::string& name) : path(fresh_dir(prefix, name)) {}
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

}  // namespace edgefm::testing
