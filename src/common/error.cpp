#include "common/error.h"

namespace edgefm {

void fail_expected(const std::string& context, const std::string& expected,
                   const std::string& got) {
  throw Error(context + ": expected " + expected + ", got " + got);
}

}  // namespace edgefm
