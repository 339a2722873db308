// The IDX reader (data/idx.h), plain and gzipped: images or labels by the selector byte.
#include "data/idx.h"
#include "fuzz_input.h"

using namespace edgefm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in{data, size};
  const bool images = in.take_byte() & 1;
  try {
    if (images) {
      const auto parsed = data::parse_idx_images(in.data, in.size, "fuzz");
      if (parsed.pixels.size() != uint64_t{parsed.count} * parsed.rows * parsed.cols) {
        fuzz::fuzz_fail("IDX pixels do not match count x rows x cols");
      }
    } else {
      data::parse_idx_labels(in.data, in.size, "fuzz");
    }
  } catch (const Error&) {
  }
  return 0;
}
