#pragma once
// The message of the edgefm::Error that `f` throws; empty when it throws none. Tests check
// that a refusal says what was expected.
#include <functional>
#include <string>

#include "common/error.h"

namespace edgefm::testing {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace edgefm::testing
