#include "route/threshold.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace edgefm::route {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// JSON has no infinity: thresholds -inf / +inf travel as strings.
json threshold_to_json(double threshold) {
  if (std::isinf(threshold)) return threshold < 0 ? "-inf" : "+inf";
  return threshold;
}

double threshold_from_json(const json& value, const std::string& context) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) {
    const auto text = value.get<std::string>();
    if (text == "-inf") return -kInf;
    if (text == "+inf" || text == "inf") return kInf;
  }
  fail_expected(context, "a number, \"-inf\" or \"+inf\"", value.dump());
}

}  // namespace

const char* route_name(Route route) { return route == Route::edge ? "edge" : "cloud"; }

json CalibrationProfile::to_json() const {
  json points_json = json::array();
  for (const auto& p : points) {
    points_json.push_back({{"threshold", threshold_to_json(p.threshold)},
                           {"edge_fraction", p.edge_fraction},
                           {"accuracy", p.accuracy},
                           {"offload_ratio", p.offload_ratio}});
  }
  return {{"format", "edgefm-calibration"}, {"version", 1}, {"score", score},
          {"samples", samples}, {"points", points_json}};
}

CalibrationProfile CalibrationProfile::from_json(const json& j, const std::string& context) {
  const auto format = json_field<std::string>(j, "format", context);
  if (format != "edgefm-calibration") {
    fail_expected(context + " format", "\"edgefm-calibration\"", "\"" + format + "\"");
  }
  const int version = json_field<int>(j, "version", context);
  if (version != 1) fail_expected(context + " version", "1", std::to_string(version));
  CalibrationProfile profile;
  if (j.contains("score")) profile.score = json_field<std::string>(j, "score", context);
  profile.samples = json_field<size_t>(j, "samples", context);
  const auto points = json_field<json>(j, "points", context);
  if (!points.is_array() || points.empty()) {
    fail_expected(context + " points", "a non-empty array", points.dump().substr(0, 40));
  }
  for (size_t i = 0; i < points.size(); ++i) {
    const std::string where = context + " point " + std::to_string(i);
    if (!points[i].contains("threshold")) throw Error(where + ": missing field 'threshold'");
    ProfilePoint p;
    p.threshold = threshold_from_json(points[i].at("threshold"), where + " threshold");
    p.edge_fraction = json_field<double>(points[i], "edge_fraction", where);
    p.accuracy = json_field<double>(points[i], "accuracy", where);
    p.offload_ratio = json_field<double>(points[i], "offload_ratio", where);
    for (double v : {p.edge_fraction, p.accuracy, p.offload_ratio}) {
      if (!(v >= 0.0 && v <= 1.0)) fail_expected(where, "fractions in [0, 1]", std::to_string(v));
    }
    if (!profile.points.empty() && !(p.threshold > profile.points.back().threshold)) {
      fail_expected(where, "thresholds in ascending order", std::to_string(p.threshold));
    }
    profile.points.push_back(p);
  }
  return profile;
}

CalibrationProfile build_profile(const std::vector<CalibrationSample>& samples,
                                 size_t max_thresholds, const std::string& score) {
  CalibrationProfile profile;
  profile.score = score;
  profile.samples = samples.size();
  const size_t n = samples.size();
  if (n == 0) return profile;

  std::vector<CalibrationSample> sorted = samples;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(sorted[i].score)) {
      fail_expected("calibration sample " + std::to_string(i), "a finite score",
                    std::to_string(sorted[i].score));
    }
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.score < b.score; });
  // With the samples ascending by score and threshold t cutting at i = #(score < t):
  // the FM answers samples [0, i), the edge answers [i, n).
  std::vector<size_t> fm_below(n + 1, 0), edge_from(n + 1, 0);
  for (size_t i = 0; i < n; ++i) fm_below[i + 1] = fm_below[i] + sorted[i].fm_correct;
  for (size_t i = n; i-- > 0;) edge_from[i] = edge_from[i + 1] + sorted[i].edge_correct;

  auto point_at = [&](double threshold, size_t cut) {
    ProfilePoint p;
    p.threshold = threshold;
    p.edge_fraction = double(n - cut) / n;
    p.offload_ratio = double(cut) / n;
    p.accuracy = double(fm_below[cut] + edge_from[cut]) / n;
    return p;
  };
  auto cut_of = [&](float threshold) {
    return size_t(std::lower_bound(sorted.begin(), sorted.end(), threshold,
                                   [](const auto& s, float t) { return s.score < t; }) -
                  sorted.begin());
  };

  // The distinct scores above the minimum (the minimum itself would repeat the all-edge point).
  std::vector<float> distinct;
  for (size_t i = 1; i < n; ++i) {
    if (sorted[i].score > sorted[i - 1].score) distinct.push_back(sorted[i].score);
  }
  std::vector<float> thresholds;
  if (distinct.size() <= max_thresholds) {
    thresholds = distinct;
  } else {
    for (size_t q = 1; q <= max_thresholds; ++q) {
      const float value = sorted[q * n / (max_thresholds + 1)].score;
      if (value > sorted[0].score && (thresholds.empty() || value > thresholds.back())) {
        thresholds.push_back(value);
      }
    }
  }
  profile.points.push_back(point_at(-kInf, 0));
  for (float t : thresholds) profile.points.push_back(point_at(t, cut_of(t)));
  profile.points.push_back(point_at(kInf, n));
  return profile;
}

double LatencyModel::transfer_ms() const {
  if (!(uplink_bps > 0.0)) return kInf;
  return rtt_ms + payload_bytes * 8.0 / uplink_bps * 1000.0;
}

double LatencyModel::e2e_ms(double edge_fraction) const {
  if (edge_fraction >= 1.0) return t_edge_ms;  // avoids 0 * inf without an uplink
  return edge_fraction * t_edge_ms +
         (1.0 - edge_fraction) * (t_edge_ms + transfer_ms() + t_cloud_ms);
}

void LatencyModel::validate() const {
  const std::pair<const char*, double> fields[] = {{"t_edge_ms", t_edge_ms},
                                                   {"t_cloud_ms", t_cloud_ms},
                                                   {"rtt_ms", rtt_ms},
                                                   {"uplink_bps", uplink_bps},
                                                   {"payload_bytes", payload_bytes}};
  for (const auto& [name, value] : fields) {
    if (!std::isfinite(value) || value < 0.0) {
      fail_expected(std::string("latency model ") + name, "a finite value >= 0",
                    std::to_string(value));
    }
  }
}

json ThresholdChoice::to_json() const {
  return {{"threshold", threshold_to_json(threshold)},
          {"expected_accuracy", expected_accuracy},
          {"expected_latency_ms", expected_latency_ms},
          {"edge_fraction", edge_fraction},
          {"offload_ratio", offload_ratio},
          {"feasible", feasible}};
}

ThresholdChoice search_threshold(const CalibrationProfile& profile, const LatencyModel& latency,
                                 double l_app_ms) {
  if (profile.empty()) {
    fail_expected("threshold search", "a calibration profile with at least one point",
                  "an empty profile");
  }
  latency.validate();
  auto choice_of = [&](const ProfilePoint& p, bool feasible) {
    ThresholdChoice c;
    c.threshold = p.threshold;
    c.expected_accuracy = p.accuracy;
    c.expected_latency_ms = latency.e2e_ms(p.edge_fraction);
    c.edge_fraction = p.edge_fraction;
    c.offload_ratio = p.offload_ratio;
    c.feasible = feasible;
    return c;
  };
  constexpr double kEps = 1e-9;
  const ProfilePoint* best = nullptr;
  double best_latency = 0.0;
  for (const auto& p : profile.points) {
    const double t = latency.e2e_ms(p.edge_fraction);
    if (!(t <= l_app_ms + kEps)) continue;
    const bool better =
        best == nullptr || p.accuracy > best->accuracy + kEps ||
        (p.accuracy >= best->accuracy - kEps &&
         (t < best_latency - kEps ||
          (t <= best_latency + kEps && p.edge_fraction > best->edge_fraction)));
    if (better) {
      best = &p;
      best_latency = t;
    }
  }
  if (best != nullptr) return choice_of(*best, true);
  const auto all_edge = std::max_element(
      profile.points.begin(), profile.points.end(),
      [](const auto& a, const auto& b) { return a.edge_fraction < b.edge_fraction; });
  // Nothing meets the budget: answer everything on the edge, at the accuracy the profile
  // measured for its highest edge fraction (build_profile's all-edge point).
  ThresholdChoice c = choice_of(*all_edge, false);
  c.threshold = -kInf;
  c.edge_fraction = 1.0;
  c.offload_ratio = 0.0;
  c.expected_latency_ms = latency.e2e_ms(1.0);
  return c;
}

}  // namespace edgefm::route
