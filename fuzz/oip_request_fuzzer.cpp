// The Open Inference Protocol decoder (cloud/oip.h): request and response bodies, JSON and
// binary tensor data, and the Inference-Header-Content-Length value. A request that decodes
// must encode and decode again to the same tensors.
#include "cloud/oip.h"
#include "fuzz_input.h"

using namespace edgefm;
using namespace edgefm::cloud;
using edgefm::fuzz::fuzz_fail;

namespace {

bool same_tensors(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].datatype != b[i].datatype || a[i].shape != b[i].shape ||
        a[i].raw != b[i].raw || a[i].strings != b[i].strings) {
      return false;
    }
  }
  return true;
}

void round_trip(const InferRequest& request) {
  EncodedBody encoded = encode_request(request);
  InferRequest again;
  try {
    again = decode_request(encoded.body, encoded.json_size);
  } catch (const Error& e) {
    std::fprintf(stderr, "re-encoded request refused: %s\n", e.what());
    fuzz_fail("encode_request output that decode_request refuses");
  }
  if (!same_tensors(request.inputs, again.inputs)) fuzz_fail("request tensors changed in a round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in{data, size};
  // Selector: bit 0 response instead of request; bit 1 a header length from the next two
  // bytes (little-endian); bit 2 the rest is a header value instead of a body.
  const uint8_t selector = in.take_byte();
  const std::optional<size_t> json_size = in.take_header_length(selector & 2);
  try {
    if (selector & 4) {
      parse_header_content_length(std::string(in.text()));
    } else if (selector & 1) {
      decode_response(in.text(), json_size);
    } else {
      round_trip(decode_request(in.text(), json_size));
    }
  } catch (const Error&) {
  }
  return 0;
}
