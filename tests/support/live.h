#pragma once
// For tests that start the real program as child processes: a scratch folder per test process,
// and the port a child wrote to its --port-file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "common/error.h"
#include "harness/process.h"

namespace edgefm::testing {

// An empty folder under the temporary directory, named after the test and this process.
inline std::filesystem::path scratch_dir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("edgefm-e2e-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The port `child` wrote to `file` (within 60 s); a test failure with the child's log and 0
// when it exited or never wrote one.
inline int wait_for_port(harness::ChildProcess& child, const std::filesystem::path& file) {
  try {
    return harness::wait_for_port_file(child, file, std::chrono::seconds(60), nullptr);
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
    return 0;
  }
}

}  // namespace edgefm::testing
