// The embedding-pool file (models/text_pool.h): parsed as untrusted JSON, then read as a pool;
// a pool that loads must save and load again to the same classes.
#include "fuzz_input.h"
#include "models/text_pool.h"

using namespace edgefm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in{data, size};
  try {
    const auto pool = models::TextPool::from_json(parse_untrusted_json(in.text()), "fuzz pool");
    const auto again = models::TextPool::from_json(pool.to_json(), "saved pool");
    if (again.names() != pool.names() || again.dim() != pool.dim()) {
      fuzz::fuzz_fail("pool changed in a save/load round trip");
    }
    pool.subset(pool.names());
  } catch (const Error&) {
  }
  return 0;
}
