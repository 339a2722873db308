#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "common/error.h"

namespace edgefm::eval {
namespace {

using Scores = std::vector<float>;

// O(n_pos * n_neg) reference: the probability that a positive outranks a negative.
double pairwise_auroc(const Scores& pos, const Scores& neg) {
  double wins = 0.0;
  for (float p : pos) {
    for (float n : neg) wins += p > n ? 1.0 : (p == n ? 0.5 : 0.0);
  }
  return wins / (double(pos.size()) * double(neg.size()));
}

TEST(Accuracy, Top1) {
  const std::vector<int> labels = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(top1_accuracy(std::vector<int>{1, 2, 0, 4}, labels), 0.75);
  EXPECT_DOUBLE_EQ(top1_accuracy(labels, labels), 1.0);
  EXPECT_THROW(top1_accuracy(std::vector<int>{1, 2}, labels), Error);
  EXPECT_THROW(top1_accuracy(std::vector<int>{}, std::vector<int>{}), Error);
}

TEST(Auroc, PerfectInverseAndTiedSeparation) {
  EXPECT_DOUBLE_EQ(auroc(Scores{0.9f, 0.8f}, Scores{0.1f, 0.2f}), 1.0);
  EXPECT_DOUBLE_EQ(auroc(Scores{0.1f, 0.2f}, Scores{0.9f, 0.8f}), 0.0);
  EXPECT_DOUBLE_EQ(auroc(Scores{0.5f}, Scores{0.5f}), 0.5);
  EXPECT_DOUBLE_EQ(auroc(Scores{0.5f, 0.5f, 0.5f}, Scores{0.5f, 0.5f}), 0.5);
}

TEST(Auroc, HandComputedWithTies) {
  // Pairs: (0.9 beats both) 2, (0.5 ties 0.5, beats 0.1) 1.5, (0.3 beats 0.1) 1 -> 4.5 / 6.
  EXPECT_DOUBLE_EQ(auroc(Scores{0.9f, 0.5f, 0.3f}, Scores{0.5f, 0.1f}), 0.75);
  // Each 1 vs {1, 0, 0}: 2.5; the 0 vs {1, 0, 0}: 1 -> 6 / 9.
  EXPECT_NEAR(auroc(Scores{1, 1, 0}, Scores{1, 0, 0}), 6.0 / 9.0, 1e-12);
}

TEST(Auroc, MatchesThePairwiseReferenceOnTiedRandomScores) {
  std::mt19937 rng(3);
  for (int round = 0; round < 20; ++round) {
    Scores pos(1 + rng() % 40), neg(1 + rng() % 40);
    for (auto& s : pos) s = float(rng() % 7) / 7;  // few distinct values: many ties
    for (auto& s : neg) s = float(rng() % 5) / 7;
    EXPECT_NEAR(auroc(pos, neg), pairwise_auroc(pos, neg), 1e-12) << round;
  }
}

TEST(Auroc, RejectsEmptySidesAndNaN) {
  EXPECT_THROW(auroc(Scores{}, Scores{0.1f}), Error);
  EXPECT_THROW(auroc(Scores{0.1f}, Scores{}), Error);
  EXPECT_THROW(auroc(Scores{std::nanf("")}, Scores{0.1f}), Error);
}

TEST(Fpr95, HandComputed) {
  Scores pos;
  for (int i = 1; i <= 20; ++i) pos.push_back(float(i));
  const Scores neg = {0.5f, 1.5f, 2.0f, 2.5f, 30.0f};
  // 19 of 20 positives (95 %) are accepted from threshold 2 up: negatives 2, 2.5 and 30 pass.
  EXPECT_DOUBLE_EQ(fpr_at_tpr(pos, neg), 0.6);
  // 100 % TPR needs threshold 1.
  EXPECT_DOUBLE_EQ(fpr_at_tpr(pos, neg, 1.0), 0.8);
  // 50 % TPR: threshold 11.
  EXPECT_DOUBLE_EQ(fpr_at_tpr(pos, neg, 0.5), 0.2);
}

TEST(Fpr95, SeparationTiesAndRounding) {
  EXPECT_DOUBLE_EQ(fpr_at_tpr(Scores{0.9f, 0.8f}, Scores{0.1f, 0.2f}), 0.0);
  EXPECT_DOUBLE_EQ(fpr_at_tpr(Scores{0.1f, 0.2f}, Scores{0.9f, 0.8f}), 1.0);
  EXPECT_DOUBLE_EQ(fpr_at_tpr(Scores{0.5f, 0.5f}, Scores{0.5f, 0.4f}), 0.5);
  // 10 positives: 95 % needs all 10, so the threshold is the lowest positive.
  Scores pos;
  for (int i = 1; i <= 10; ++i) pos.push_back(float(i));
  EXPECT_DOUBLE_EQ(fpr_at_tpr(pos, Scores{1.0f, 0.5f}), 0.5);
  EXPECT_THROW(fpr_at_tpr(pos, Scores{}), Error);
  EXPECT_THROW(fpr_at_tpr(pos, Scores{1.0f}, 0.0), Error);
  EXPECT_THROW(fpr_at_tpr(pos, Scores{1.0f}, 1.5), Error);
}

TEST(OpenSet, SplitsByLabel) {
  const Scores scores = {0.9f, 0.1f, 0.8f, 0.2f};
  const auto m = open_set_metrics(scores, {true, false, true, false});
  EXPECT_DOUBLE_EQ(m.auroc, 1.0);
  EXPECT_DOUBLE_EQ(m.fpr95, 0.0);
  EXPECT_EQ(m.positives, 2u);
  EXPECT_EQ(m.negatives, 2u);
  EXPECT_EQ(m.to_json()["auroc"], 1.0);
  EXPECT_THROW(open_set_metrics(scores, {true, false}), Error);
}

TEST(Curve, OrderedByOffloadRatio) {
  const auto profile = route::build_profile(
      {{0.3f, true, true}, {0.1f, false, true}, {0.4f, true, false}, {0.2f, false, true}});
  const auto curve = accuracy_offload_curve(profile);
  ASSERT_EQ(curve.size(), 5u);
  const double offload[] = {0.0, 0.25, 0.5, 0.75, 1.0};
  const double accuracy[] = {0.5, 0.75, 1.0, 1.0, 0.75};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_DOUBLE_EQ(curve[i].offload_ratio, offload[i]);
    EXPECT_DOUBLE_EQ(curve[i].accuracy, accuracy[i]);
  }
  EXPECT_EQ(curve.front().threshold, -std::numeric_limits<double>::infinity());
}

TEST(Percentile, NearestRank) {
  std::vector<double> values;
  for (int i = 1; i <= 100; ++i) values.push_back(i);
  std::shuffle(values.begin(), values.end(), std::mt19937(1));
  EXPECT_DOUBLE_EQ(percentile(values, 50), 50);
  EXPECT_DOUBLE_EQ(percentile(values, 95), 95);
  EXPECT_DOUBLE_EQ(percentile(values, 99), 99);
  EXPECT_DOUBLE_EQ(percentile(values, 99.5), 100);
  EXPECT_DOUBLE_EQ(percentile(values, 100), 100);
  EXPECT_DOUBLE_EQ(percentile(values, 0), 1);
  // Three samples: p50 -> rank ceil(1.5) = 2, p95 -> rank ceil(2.85) = 3.
  EXPECT_DOUBLE_EQ(percentile({5, 1, 3}, 50), 3);
  EXPECT_DOUBLE_EQ(percentile({5, 1, 3}, 95), 5);
  EXPECT_DOUBLE_EQ(percentile({5, 1, 3}, 33), 1);
  EXPECT_THROW(percentile({}, 50), Error);
  EXPECT_THROW(percentile({1}, 101), Error);
}

TEST(Percentile, LatencySummary) {
  std::vector<double> samples(200, 1.0);
  samples[10] = 50.0;  // one outlier in 200 samples: above p99's rank (198)
  samples[20] = 40.0;
  samples[30] = 30.0;
  const auto s = summarize_latency(samples);
  EXPECT_EQ(s.count, 200u);
  EXPECT_DOUBLE_EQ(s.p50_ms, 1.0);
  EXPECT_DOUBLE_EQ(s.p95_ms, 1.0);
  EXPECT_DOUBLE_EQ(s.p99_ms, 30.0);  // rank 198 of 200
  EXPECT_DOUBLE_EQ(s.max_ms, 50.0);
  EXPECT_DOUBLE_EQ(s.mean_ms, (197.0 + 120.0) / 200.0);
  EXPECT_EQ(s.to_json()["p99_ms"], 30.0);
  EXPECT_THROW(summarize_latency({}), Error);
}

}  // namespace
}  // namespace edgefm::eval
