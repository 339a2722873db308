// Model and artifact metadata as it arrives from files and the customization service: the
// sample spec (data/sample_spec.h), artifact signatures (cloud/artifact_signature.h), the
// routing score and the calibration profile (route/). The selector byte picks the reader.
#include "cloud/artifact_signature.h"
#include "data/sample_spec.h"
#include "fuzz_input.h"
#include "route/scores.h"
#include "route/threshold.h"

using namespace edgefm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in{data, size};
  const uint8_t selector = in.take_byte();
  try {
    const json value = parse_untrusted_json(in.text());
    switch (selector % 4) {
      case 0: {
        const auto spec = data::spec_from_json(value, "fuzz spec");
        spec.describe();
        if (data::spec_from_json(data::to_json(spec), "saved spec") != spec) {
          fuzz::fuzz_fail("sample spec changed in a save/load round trip");
        }
        break;
      }
      case 1:
        cloud::artifact_signed_text(value);
        cloud::verify_artifact_signature(value, "fuzz-key");
        break;
      case 2:
        route::score_from_json(value, "fuzz score");
        break;
      case 3: {
        const auto profile = route::CalibrationProfile::from_json(value, "fuzz profile");
        route::CalibrationProfile::from_json(profile.to_json(), "saved profile");
        break;
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
