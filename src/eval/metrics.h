#pragma once
// Evaluation metrics: top-1 accuracy, open-set detection (AUROC, FPR at 95 % TPR), the
// accuracy-offload curve of a calibration profile and latency percentiles.
//
// Open-set convention (as OpenOOD counts it): seen-class samples are the positives, unseen-class
// samples the negatives, and a score is "higher = more in-distribution" (every route score is).
#include <cstddef>
#include <span>
#include <vector>

#include "common/json_io.h"
#include "route/threshold.h"

namespace edgefm::eval {

// Fraction of predicted[i] == labels[i]; throws Error on a size mismatch or no samples.
double top1_accuracy(std::span<const int> predicted, std::span<const int> labels);

// Probability that a random positive scores above a random negative, ties counting one half
// (the Mann-Whitney U statistic over n_pos * n_neg). Throws Error when either side is empty
// or a score is NaN.
double auroc(std::span<const float> positive_scores, std::span<const float> negative_scores);

// False-positive rate at the highest threshold t (accept = score >= t) whose true-positive
// rate reaches `tpr`: the fraction of negatives accepted while at least tpr of the positives
// are. Throws Error when either side is empty or tpr is outside (0, 1].
double fpr_at_tpr(std::span<const float> positive_scores, std::span<const float> negative_scores,
                  double tpr = 0.95);

struct OpenSetMetrics {
  double auroc = 0.0;
  double fpr95 = 0.0;
  size_t positives = 0;  // seen-class samples
  size_t negatives = 0;  // unseen-class samples
  json to_json() const;  // {"auroc", "fpr95", "positives", "negatives"}
};

// Splits scores by is_positive (seen class) and computes both metrics.
OpenSetMetrics open_set_metrics(std::span<const float> scores,
                                const std::vector<bool>& is_positive);

struct CurvePoint {
  double offload_ratio = 0.0;
  double accuracy = 0.0;
  double threshold = 0.0;
};

// The profile's points ordered by offload ratio ascending (edge-only first, FM-only last).
std::vector<CurvePoint> accuracy_offload_curve(const route::CalibrationProfile& profile);

// Nearest-rank percentile: the smallest sample such that at least p % of the samples are <= it
// (sorted[ceil(p/100 * n) - 1]; p = 0 gives the minimum). Always one of the samples, never an
// interpolation. Throws Error on no samples or p outside [0, 100].
double percentile(std::vector<double> values, double p);

struct LatencySummary {
  size_t count = 0;
  double mean_ms = 0.0;
  double p50_ms = 0.0;
  double p90_ms = 0.0;
  double p95_ms = 0.0;
  double p99_ms = 0.0;
  double max_ms = 0.0;
  json to_json() const;  // {"count", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"}
};

// Summary of latency samples in milliseconds (percentiles by the rule above); throws Error on
// no samples.
LatencySummary summarize_latency(std::vector<double> samples_ms);

}  // namespace edgefm::eval
