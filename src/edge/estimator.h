#pragma once
// Uplink bandwidth and RTT, estimated by the edge from its own cloud calls (no probing
// traffic of its own: every sample is a real request).
//
// Each finished call gives one transfer sample: the request body bytes, the wall time of the
// call and the time the server says it spent. The network part of the call is
//   transfer_ms = call_ms - server_ms.
// - RTT: the smallest transfer time among the last `rtt_window` finished calls (the path's
//   floor: one slow transfer cannot raise a minimum).
// - Uplink bandwidth, effective: the rate that explains the transfer time above that floor,
//   bytes * 8 / (transfer_ms - rtt). Queueing at the bottleneck therefore reads as less
//   bandwidth, which is what the latency model t_trans = rtt + bytes * 8 / bw needs. The
//   per-sample seconds-per-byte go through the median of the last `window` samples (one
//   outlier does not move a median), then an EWMA over those medians smooths what is left.
//   The window starts full of the nominal value, so the first samples move it only when
//   they agree with each other.
#include <cstddef>
#include <cstdint>
#include <deque>

#include "common/json_io.h"
#include "route/threshold.h"

namespace edgefm::edge {

struct EstimatorOptions {
  double nominal_rtt_ms = route::kDefaultRttMs;        // the estimate before any transfer
  double nominal_uplink_bps = 5e6;     // ditto
  size_t window = 9;                   // samples in the bandwidth median (odd is best)
  size_t rtt_window = 32;              // samples the RTT floor is the minimum of
  double ewma_alpha = 0.3;             // weight of the newest median in the EWMA
  double min_excess_ms = 0.05;         // floor of transfer_ms - rtt (caps the bandwidth)
};
EstimatorOptions estimator_default_options();

// One finished (or given-up) cloud call.
struct TransferSample {
  int64_t bytes_sent = 0;   // request body bytes
  double call_ms = 0.0;     // wall time of the call as the edge saw it
  double server_ms = -1.0;  // time the server reported (queue + compute); < 0: unknown
  // The call had not finished after call_ms (the edge gave up waiting): a lower bound. It
  // counts for the bandwidth, not for the RTT floor.
  bool censored = false;
};

struct NetworkEstimate {
  double rtt_ms = 0.0;
  double uplink_bps = 0.0;
  size_t samples = 0;  // transfer samples seen
  json to_json() const;  // {"rtt_ms", "uplink_bps", "samples"}
};

class NetworkEstimator {
 public:
  // Throws Error on a non-positive nominal value, an empty window or alpha outside (0, 1].
  explicit NetworkEstimator(const EstimatorOptions& options = estimator_default_options());

  // Ignores samples with no bytes or a non-finite / non-positive call time.
  void add(const TransferSample& sample);
  NetworkEstimate estimate() const;
  // rtt + bytes * 8 / uplink, in ms, at the current estimate.
  double predicted_transfer_ms(double bytes) const;

 private:
  EstimatorOptions options_;
  std::deque<double> recent_transfer_ms_;  // RTT floor window
  std::deque<double> recent_ms_per_byte_;  // bandwidth median window
  double smoothed_ms_per_byte_;
  size_t samples_ = 0;
};

}  // namespace edgefm::edge
