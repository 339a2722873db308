#include "edge/estimator.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"

namespace edgefm::edge {

EstimatorOptions estimator_default_options() { return EstimatorOptions{}; }

json NetworkEstimate::to_json() const {
  return {{"rtt_ms", rtt_ms}, {"uplink_bps", uplink_bps}, {"samples", samples}};
}

NetworkEstimator::NetworkEstimator(const EstimatorOptions& options) : options_(options) {
  if (!(options_.nominal_rtt_ms >= 0.0) || !std::isfinite(options_.nominal_rtt_ms)) {
    fail_expected("network estimator nominal RTT", "a finite time >= 0 ms",
                  std::to_string(options_.nominal_rtt_ms));
  }
  if (!(options_.nominal_uplink_bps > 0.0) || !std::isfinite(options_.nominal_uplink_bps)) {
    fail_expected("network estimator nominal uplink", "a finite rate > 0 bit/s",
                  std::to_string(options_.nominal_uplink_bps));
  }
  if (options_.window == 0 || options_.rtt_window == 0) {
    fail_expected("network estimator windows", "at least one sample each", "0");
  }
  if (!(options_.ewma_alpha > 0.0 && options_.ewma_alpha <= 1.0)) {
    fail_expected("network estimator EWMA weight", "a value in (0, 1]",
                  std::to_string(options_.ewma_alpha));
  }
  if (!(options_.min_excess_ms > 0.0)) {
    fail_expected("network estimator minimum excess", "a time > 0 ms",
                  std::to_string(options_.min_excess_ms));
  }
  smoothed_ms_per_byte_ = 8.0 * 1000.0 / options_.nominal_uplink_bps;
  recent_ms_per_byte_.assign(options_.window, smoothed_ms_per_byte_);
}

void NetworkEstimator::add(const TransferSample& sample) {
  if (sample.bytes_sent <= 0 || !std::isfinite(sample.call_ms) || !(sample.call_ms > 0.0)) {
    return;
  }
  const double server_ms = sample.server_ms > 0.0 ? sample.server_ms : 0.0;
  const double transfer_ms = std::max(sample.call_ms - server_ms, 0.0);
  ++samples_;

  if (!sample.censored) {
    recent_transfer_ms_.push_back(transfer_ms);
    if (recent_transfer_ms_.size() > options_.rtt_window) recent_transfer_ms_.pop_front();
  }
  const double rtt_ms =
      recent_transfer_ms_.empty()
          ? options_.nominal_rtt_ms
          : *std::min_element(recent_transfer_ms_.begin(), recent_transfer_ms_.end());

  const double excess_ms = std::max(transfer_ms - rtt_ms, options_.min_excess_ms);
  recent_ms_per_byte_.push_back(excess_ms / static_cast<double>(sample.bytes_sent));
  if (recent_ms_per_byte_.size() > options_.window) recent_ms_per_byte_.pop_front();

  std::vector<double> sorted(recent_ms_per_byte_.begin(), recent_ms_per_byte_.end());
  const size_t mid = sorted.size() / 2;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(mid), sorted.end());
  double median = sorted[mid];
  if (sorted.size() % 2 == 0) {
    // The lower middle is the largest of the lower half.
    median = 0.5 * (median + *std::max_element(sorted.begin(),
                                               sorted.begin() + static_cast<std::ptrdiff_t>(mid)));
  }
  smoothed_ms_per_byte_ =
      (1.0 - options_.ewma_alpha) * smoothed_ms_per_byte_ + options_.ewma_alpha * median;
}

NetworkEstimate NetworkEstimator::estimate() const {
  NetworkEstimate e;
  e.rtt_ms = recent_transfer_ms_.empty()
                 ? options_.nominal_rtt_ms
                 : *std::min_element(recent_transfer_ms_.begin(), recent_transfer_ms_.end());
  e.uplink_bps = 8.0 * 1000.0 / smoothed_ms_per_byte_;
  e.samples = samples_;
  return e;
}

double NetworkEstimator::predicted_transfer_ms(double bytes) const {
  const NetworkEstimate e = estimate();
  return e.rtt_ms + bytes * 8.0 * 1000.0 / e.uplink_bps;
}

}  // namespace edgefm::edge
