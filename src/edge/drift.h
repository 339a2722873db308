#pragma once
// Drift detection from audits. The edge sends a few confident samples to the cloud
// (RuntimeOptions::audit_fraction) and compares the FM's answer with its own. On the classes
// it was customized for, the two rarely disagree; when classes it never saw start to arrive,
// the small model maps them confidently onto similar known classes and the disagreement rate
// rises, even though the margins look fine.
//
// The test is a one-sided CUSUM on the Bernoulli disagreement sequence: each audit adds the
// log-likelihood ratio of "disagreement rate p1" against "rate p0",
//   disagree: log(p1 / p0)        agree: log((1 - p1) / (1 - p0)),
// the sum is floored at 0, and drift is declared when it reaches `threshold`. With p0 = 0.05,
// p1 = 0.3 and threshold 4, three disagreements among the last few audits are enough, while a
// rate of 5 % needs thousands of audits on average to raise a false alarm.
//
// The same test also runs on the routing decisions (edge/loop.h, "offload drift"): each
// sample is an event "routed to the cloud" whose expected rate p0 is what the calibration
// profile predicts at the threshold in force, so add(event, p0, p1) takes the rates per event.
// A model that suddenly sends far more to the cloud than it was calibrated to has met data
// unlike its training data: with the hybrid score, that is an unseen class. Torch-free.
#include <cstddef>
#include <deque>
#include <string>

#include "common/json_io.h"

namespace edgefm::edge {

struct DriftOptions {
  double baseline_rate = 0.05;  // p0: disagreement expected on known classes
  double drift_rate = 0.30;     // p1: disagreement that counts as drift
  double threshold = 4.0;       // CUSUM level that declares drift (log-likelihood units)
  size_t min_audits = 3;        // never declare on fewer audits since the last reset
  size_t window = 50;           // audits kept for the reported recent rate
};
DriftOptions drift_default_options();

class DriftDetector {
 public:
  // Throws Error unless 0 < baseline_rate < drift_rate < 1, threshold > 0 and window > 0.
  explicit DriftDetector(DriftOptions options = drift_default_options());

  // One audit; returns true when this audit declares drift (once: the statistic is reset, so
  // the next declaration needs fresh evidence).
  bool add(bool disagree);
  // One event with its own rates (0 < p0 < p1 < 1; Error otherwise); the options' rates are
  // not used.
  bool add(bool event, double p0, double p1);
  void reset();

  double statistic() const { return statistic_; }
  size_t audits() const { return audits_total_; }
  size_t disagreements() const { return disagreements_total_; }
  double recent_rate() const;  // disagreement share of the last `window` audits (0: none)
  size_t detections() const { return detections_; }
  // {"statistic", "events", "hits", "recent_rate", "detections"}: events are audits (hits:
  // disagreements) or routing decisions (hits: samples routed to the cloud).
  json to_json() const;

 private:
  bool step(bool event, double llr);

  DriftOptions options_;
  double up_ = 0.0;    // log(p1 / p0)
  double down_ = 0.0;  // log((1 - p1) / (1 - p0)) < 0
  double statistic_ = 0.0;
  size_t since_reset_ = 0;
  size_t audits_total_ = 0;
  size_t disagreements_total_ = 0;
  size_t detections_ = 0;
  std::deque<bool> recent_;
};

}  // namespace edgefm::edge
