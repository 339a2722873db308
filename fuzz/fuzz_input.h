#pragma once
// What every fuzz target shares: the input as bytes and text, a selector byte for targets
// with several parsers, and the rule for findings. A parser may refuse its input only with
// edgefm::Error (what the programs catch and report); any other exception escapes
// LLVMFuzzerTestOneInput and aborts, so libFuzzer records it as a crash, like a sanitizer
// report. Broken invariants call fuzz_fail.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

namespace edgefm::fuzz {

struct FuzzInput {
  const uint8_t* data;
  size_t size;

  std::string_view text() const { return {reinterpret_cast<const char*>(data), size}; }
  // Consumes and returns the first byte (0 when there is none).
  uint8_t take_byte() {
    if (size == 0) return 0;
    --size;
    return *data++;
  }
  // An Inference-Header-Content-Length from the next two bytes (little-endian) when
  // `present`; otherwise none and nothing consumed.
  std::optional<size_t> take_header_length(bool present) {
    if (!present) return std::nullopt;
    const size_t low = take_byte();
    return low | size_t{take_byte()} << 8;
  }
};

[[noreturn]] inline void fuzz_fail(const char* what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}

}  // namespace edgefm::fuzz
