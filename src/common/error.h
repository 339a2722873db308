#pragma once
// Errors: every part throws edgefm::Error with a message that says what was expected and
// what came; the CLI catches it at the edge of the program and prints it.
#include <stdexcept>
#include <string>

namespace edgefm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error("<context>: expected <expected>, got <got>").
[[noreturn]] void fail_expected(const std::string& context, const std::string& expected,
                                const std::string& got);

}  // namespace edgefm
