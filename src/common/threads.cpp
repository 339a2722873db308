#include "common/threads.h"

#include <thread>

extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace edgefm {

void pin_openblas_to_one_thread() {
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
}

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace edgefm
