// The PNG and JPEG decoders (data/image.h) and the preprocessing of what they accept, to a
// small spec whose channels and resize mode come from the selector byte.
#include "data/image.h"
#include "fuzz_input.h"

using namespace edgefm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in{data, size};
  const uint8_t selector = in.take_byte();
  try {
    const auto image = data::decode_image(in.data, in.size, "fuzz");
    if (image.pixels.size() !=
        static_cast<size_t>(image.width) * image.height * image.channels) {
      fuzz::fuzz_fail("decoded pixels do not match width x height x channels");
    }
    data::SampleSpec spec;
    spec.shape = {1 + selector % 4, 7, 9};
    static const char* modes[] = {"shorter", "longer", "squash"};
    spec.image.resize_mode = modes[(selector / 4) % 3];
    const auto tensor = data::preprocess_image(image, spec);
    if (static_cast<int64_t>(tensor.size()) != spec.shape.numel()) {
      fuzz::fuzz_fail("preprocessed image has the wrong size");
    }
  } catch (const Error&) {
  }
  return 0;
}
