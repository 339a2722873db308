#include "edge/drift.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace edgefm::edge {

DriftOptions drift_default_options() { return DriftOptions{}; }

DriftDetector::DriftDetector(DriftOptions options) : options_(options) {
  if (!(options_.baseline_rate > 0.0 && options_.baseline_rate < options_.drift_rate &&
        options_.drift_rate < 1.0)) {
    fail_expected("drift detector rates", "0 < baseline rate < drift rate < 1",
                  std::to_string(options_.baseline_rate) + " and " +
                      std::to_string(options_.drift_rate));
  }
  if (!(options_.threshold > 0.0)) {
    fail_expected("drift detector threshold", "> 0", std::to_string(options_.threshold));
  }
  if (options_.window == 0) fail_expected("drift detector window", ">= 1 audit", "0");
  up_ = std::log(options_.drift_rate / options_.baseline_rate);
  down_ = std::log((1.0 - options_.drift_rate) / (1.0 - options_.baseline_rate));
}

bool DriftDetector::add(bool disagree) { return step(disagree, disagree ? up_ : down_); }

bool DriftDetector::add(bool event, double p0, double p1) {
  if (!(p0 > 0.0 && p0 < p1 && p1 < 1.0)) {
    fail_expected("drift detector event rates", "0 < p0 < p1 < 1",
                  std::to_string(p0) + " and " + std::to_string(p1));
  }
  return step(event, event ? std::log(p1 / p0) : std::log((1.0 - p1) / (1.0 - p0)));
}

bool DriftDetector::step(bool event, double llr) {
  ++audits_total_;
  disagreements_total_ += event;
  recent_.push_back(event);
  if (recent_.size() > options_.window) recent_.pop_front();
  ++since_reset_;
  statistic_ = std::max(0.0, statistic_ + llr);
  if (statistic_ >= options_.threshold && since_reset_ >= options_.min_audits) {
    ++detections_;
    reset();
    return true;
  }
  return false;
}

void DriftDetector::reset() {
  statistic_ = 0.0;
  since_reset_ = 0;
}

double DriftDetector::recent_rate() const {
  if (recent_.empty()) return 0.0;
  const auto n = std::count(recent_.begin(), recent_.end(), true);
  return static_cast<double>(n) / static_cast<double>(recent_.size());
}

json DriftDetector::to_json() const {
  return {{"statistic", statistic_},
          {"events", audits_total_},
          {"hits", disagreements_total_},
          {"recent_rate", recent_rate()},
          {"detections", detections_}};
}

}  // namespace edgefm::edge
