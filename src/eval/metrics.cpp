#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "common/error.h"

namespace edgefm::eval {
namespace {

void check_sides(std::span<const float> pos, std::span<const float> neg, const char* what) {
  if (pos.empty() || neg.empty()) {
    fail_expected(
        what, "at least one positive and one negative score",
        std::to_string(pos.size()) + " positives and " + std::to_string(neg.size()) + " negatives");
  }
  for (auto side : {pos, neg}) {
    for (float s : side) {
      if (std::isnan(s)) fail_expected(what, "scores that are numbers", "NaN");
    }
  }
}

}  // namespace

double top1_accuracy(std::span<const int> predicted, std::span<const int> labels) {
  if (predicted.size() != labels.size()) {
    fail_expected("top-1 accuracy", std::to_string(labels.size()) + " predictions",
                  std::to_string(predicted.size()));
  }
  if (labels.empty()) fail_expected("top-1 accuracy", "at least one sample", "none");
  size_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += predicted[i] == labels[i];
  return double(correct) / labels.size();
}

double auroc(std::span<const float> positive_scores, std::span<const float> negative_scores) {
  check_sides(positive_scores, negative_scores, "AUROC");
  struct Item {
    float score;
    bool positive;
  };
  std::vector<Item> all;
  all.reserve(positive_scores.size() + negative_scores.size());
  for (float s : positive_scores) all.push_back({s, true});
  for (float s : negative_scores) all.push_back({s, false});
  std::sort(all.begin(), all.end(), [](const Item& a, const Item& b) { return a.score < b.score; });
  // Sum of the positives' ranks (1-based), each tied group sharing its average rank.
  double rank_sum = 0.0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    size_t positives = 0;
    while (j < all.size() && all[j].score == all[i].score) positives += all[j++].positive;
    const double average_rank = (double(i + 1) + double(j)) / 2.0;
    rank_sum += average_rank * positives;
    i = j;
  }
  const double n_pos = double(positive_scores.size());
  const double n_neg = double(negative_scores.size());
  const double u = rank_sum - n_pos * (n_pos + 1.0) / 2.0;
  return u / (n_pos * n_neg);
}

double fpr_at_tpr(std::span<const float> positive_scores, std::span<const float> negative_scores,
                  double tpr) {
  check_sides(positive_scores, negative_scores, "FPR at TPR");
  if (!(tpr > 0.0 && tpr <= 1.0)) fail_expected("FPR at TPR", "tpr in (0, 1]", std::to_string(tpr));
  std::vector<float> pos(positive_scores.begin(), positive_scores.end());
  std::sort(pos.begin(), pos.end(), std::greater<>());
  // The fewest positives that reach the TPR, and the threshold that accepts exactly those
  // (and any positive tied with the last of them).
  const double exact = tpr * double(pos.size());
  const size_t needed = std::max<size_t>(1, size_t(std::ceil(exact - 1e-9)));
  const float threshold = pos[needed - 1];
  size_t accepted = 0;
  for (float s : negative_scores) accepted += s >= threshold;
  return double(accepted) / negative_scores.size();
}

json OpenSetMetrics::to_json() const {
  return {{"auroc", auroc}, {"fpr95", fpr95}, {"positives", positives}, {"negatives", negatives}};
}

OpenSetMetrics open_set_metrics(std::span<const float> scores,
                                const std::vector<bool>& is_positive) {
  if (scores.size() != is_positive.size()) {
    fail_expected("open-set metrics", std::to_string(scores.size()) + " labels",
                  std::to_string(is_positive.size()));
  }
  std::vector<float> pos, neg;
  for (size_t i = 0; i < scores.size(); ++i) (is_positive[i] ? pos : neg).push_back(scores[i]);
  OpenSetMetrics m;
  m.auroc = auroc(pos, neg);
  m.fpr95 = fpr_at_tpr(pos, neg, 0.95);
  m.positives = pos.size();
  m.negatives = neg.size();
  return m;
}

std::vector<CurvePoint> accuracy_offload_curve(const route::CalibrationProfile& profile) {
  std::vector<CurvePoint> curve;
  curve.reserve(profile.points.size());
  for (const auto& p : profile.points) curve.push_back({p.offload_ratio, p.accuracy, p.threshold});
  std::stable_sort(curve.begin(), curve.end(), [](const CurvePoint& a, const CurvePoint& b) {
    return a.offload_ratio < b.offload_ratio;
  });
  return curve;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) fail_expected("percentile", "at least one sample", "none");
  if (!(p >= 0.0 && p <= 100.0)) fail_expected("percentile", "p in [0, 100]", std::to_string(p));
  const double n = double(values.size());
  const size_t rank = std::max<size_t>(1, size_t(std::ceil(p * n / 100.0 - 1e-9)));
  std::nth_element(values.begin(), values.begin() + (rank - 1), values.end());
  return values[rank - 1];
}

json LatencySummary::to_json() const {
  return {{"count", count},   {"mean_ms", mean_ms}, {"p50_ms", p50_ms},
          {"p90_ms", p90_ms}, {"p95_ms", p95_ms}, {"p99_ms", p99_ms},   {"max_ms", max_ms}};
}

LatencySummary summarize_latency(std::vector<double> samples_ms) {
  if (samples_ms.empty()) fail_expected("latency summary", "at least one sample", "none");
  std::sort(samples_ms.begin(), samples_ms.end());
  LatencySummary s;
  s.count = samples_ms.size();
  s.mean_ms = std::accumulate(samples_ms.begin(), samples_ms.end(), 0.0) / s.count;
  s.p50_ms = percentile(samples_ms, 50);
  s.p90_ms = percentile(samples_ms, 90);
  s.p95_ms = percentile(samples_ms, 95);
  s.p99_ms = percentile(samples_ms, 99);
  s.max_ms = samples_ms.back();
  return s;
}

}  // namespace edgefm::eval
