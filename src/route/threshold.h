#pragma once
// Dynamic model switching: route a sample to the edge when its confidence score reaches the
// threshold, and search that threshold from a calibration profile and the latency model of
// DESIGN.md:
//   t_trans      = rtt + payload_bytes * 8 / uplink_bps
//   t_e2e(thre)  = r(thre) * t_edge + (1 - r(thre)) * (t_edge + t_trans + t_cloud)
// (the edge model always runs first). The threshold with the best expected accuracy whose
// t_e2e stays within L_app wins; ties go to the lower latency.
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "common/json_io.h"

namespace edgefm::route {

enum class Route { edge, cloud };

// r(x) = 1[score >= threshold]: -inf sends everything to the edge, +inf everything to the cloud.
inline Route route(float score, double threshold) {
  return score >= threshold ? Route::edge : Route::cloud;
}
const char* route_name(Route route);  // "edge" / "cloud"

// One held-out sample: its score and whether the edge and the FM classified it correctly.
struct CalibrationSample {
  float score = 0.0f;
  bool edge_correct = false;
  bool fm_correct = false;
};

struct ProfilePoint {
  double threshold = 0.0;      // route edge when score >= threshold
  double edge_fraction = 0.0;  // r(threshold)
  double accuracy = 0.0;       // edge answers on score >= threshold, FM answers on the rest
  double offload_ratio = 0.0;  // 1 - edge_fraction
};

// Accuracy and offload as functions of the threshold, ascending in threshold (so descending in
// edge_fraction). The first point is threshold -inf (all edge), the last +inf (all cloud).
struct CalibrationProfile {
  std::string score;  // the score it was measured with ("margin", ...), may be empty
  size_t samples = 0;
  std::vector<ProfilePoint> points;

  bool empty() const { return points.empty(); }
  // {"format": "edgefm-calibration", "version": 1, "score", "samples", "points": [{"threshold",
  // "edge_fraction", "accuracy", "offload_ratio"}]}; infinite thresholds are written as the
  // strings "-inf" / "+inf".
  json to_json() const;
  // Throws Error on a malformed profile, including an empty one.
  static CalibrationProfile from_json(const json& j, const std::string& context);
};

// Candidate thresholds: -inf, +inf and the distinct score values at up to `max_thresholds`
// evenly spaced quantiles of the held-out scores (all distinct values when there are fewer).
// No samples -> an empty profile.
CalibrationProfile build_profile(const std::vector<CalibrationSample>& samples,
                                 size_t max_thresholds = 200, const std::string& score = "");

// The defaults every command shares (docs/cli.md): the application's latency budget L_app
// and the network assumed before anything is measured.
inline constexpr double kDefaultLAppMs = 20.0;
inline constexpr double kDefaultRttMs = 80.0;
inline constexpr double kDefaultUplinkMbps = 5.0;
inline constexpr double kDefaultCloudMs = 5.0;

struct LatencyModel {
  double t_edge_ms = 0.0;      // edge model forward + score
  double t_cloud_ms = 0.0;     // cloud service time (queue + FM forward)
  double rtt_ms = 0.0;         // network round trip
  double uplink_bps = 0.0;     // uplink bandwidth, bits/s; <= 0 means no uplink (cloud unusable)
  double payload_bytes = 0.0;  // bytes sent per cloud query

  double transfer_ms() const;  // rtt + payload*8/bw (+inf without an uplink)
  double e2e_ms(double edge_fraction) const;
  void validate() const;       // throws Error on negative or non-finite times
};

struct ThresholdChoice {
  double threshold = -std::numeric_limits<double>::infinity();
  double expected_accuracy = 0.0;
  double expected_latency_ms = 0.0;
  double edge_fraction = 1.0;
  double offload_ratio = 0.0;
  bool feasible = false;  // false: no threshold meets L_app; this is then the all-edge answer
  json to_json() const;
};

// Best expected accuracy with t_e2e <= l_app_ms (ties: lower latency, then higher edge
// fraction). When no point is feasible: the all-edge answer (threshold -inf, edge fraction 1,
// latency t_edge, the accuracy of the profile's highest-edge-fraction point) with
// feasible = false. An empty profile is a configuration error: throws Error.
ThresholdChoice search_threshold(const CalibrationProfile& profile, const LatencyModel& latency,
                                 double l_app_ms);

}  // namespace edgefm::route
