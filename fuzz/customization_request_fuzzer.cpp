// The customization service's request bodies (cloud/customization.h): sample uploads (OIP,
// JSON or binary tensor data, for a 1 x 4 x 4 sample shape), job requests, and the device
// profile and budget a job request carries (customize/arch_choice.h).
#include "cloud/customization.h"
#include "customize/arch_choice.h"
#include "fuzz_input.h"

using namespace edgefm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in{data, size};
  // Selector: bits 0-1 the body kind; bit 2 a header length from the next two bytes.
  const uint8_t selector = in.take_byte();
  const std::optional<size_t> json_size = in.take_header_length(selector & 4);
  try {
    switch (selector % 4) {
      case 0:
      case 1: {
        const models::ImageShape shape{1, 4, 4};
        const auto upload = cloud::parse_sample_upload(in.text(), json_size, shape);
        if (upload.count == 0 || upload.images.size() != upload.count * 16 ||
            !(upload.metadata.empty() || upload.metadata.size() == upload.count)) {
          fuzz::fuzz_fail("a sample upload accepted with the wrong sizes");
        }
        break;
      }
      case 2: {
        const json request = cloud::parse_job_request(in.text());
        if (request.is_object() && request.contains("device") && request["device"].is_string()) {
          cloud::check_device_name(request["device"].get<std::string>());
        }
        break;
      }
      case 3: {
        const json request = cloud::parse_job_request(in.text());
        if (!request.is_object() || !request.contains("profile")) break;
        const auto profile = customize::DeviceProfile::from_json(request["profile"]);
        customize::ResourceBudget budget;
        if (request.contains("budget")) budget = customize::ResourceBudget::from_json(request["budget"]);
        if (!customize::architectures_within(profile, budget).empty()) {
          customize::choose_architecture({}, profile, budget);
        }
        break;
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
