// The Mahimahi trace parser (net/trace.h) and the capacity arithmetic on what it accepts.
#include "fuzz_input.h"
#include "common/error.h"
#include "net/trace.h"

using namespace edgefm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in{data, size};
  try {
    const auto trace = net::Trace::parse(in.text(), "fuzz");
    const int64_t period = trace.period_ms();
    trace.mean_rate_bps();
    // Opportunity number opportunities_before(t) is the first at or after t.
    for (int64_t t : {int64_t{0}, int64_t{1}, period - 1, period, period + 1, 3 * period + 7}) {
      const int64_t before = trace.opportunities_before(t);
      if (trace.opportunity_time_ms(before) < t || trace.next_opportunity_ms(t) < t) {
        fuzz::fuzz_fail("an opportunity counted as at or after t lies before t");
      }
      if (before > 0 && trace.opportunity_time_ms(before - 1) >= t) {
        fuzz::fuzz_fail("an opportunity counted as before t lies at or after t");
      }
    }
    trace.rate_bps(0, 2 * period + 1);
  } catch (const Error&) {
  }
  return 0;
}
