#include "route/threshold.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/error.h"

namespace edgefm::route {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Scores 0.1 .. 0.4; the edge is wrong on the two least confident, the FM on the most confident.
std::vector<CalibrationSample> hand_samples() {
  return {{0.3f, true, true}, {0.1f, false, true}, {0.4f, true, false}, {0.2f, false, true}};
}

// t_trans = 20 + 1250 * 8 / 1e6 s = 30 ms; all-cloud t_e2e = 2 + 30 + 10 = 42 ms.
LatencyModel hand_latency() { return {2.0, 10.0, 20.0, 1e6, 1250.0}; }

TEST(Route, ThresholdIsInclusiveAndInfinitiesMeanAllEdgeOrAllCloud) {
  EXPECT_EQ(route(0.5f, 0.5), Route::edge);
  EXPECT_EQ(route(0.49f, 0.5), Route::cloud);
  EXPECT_EQ(route(-1e30f, -kInf), Route::edge);
  EXPECT_EQ(route(1e30f, kInf), Route::cloud);
  EXPECT_STREQ(route_name(Route::edge), "edge");
  EXPECT_STREQ(route_name(Route::cloud), "cloud");
}

TEST(Profile, HandComputedPoints) {
  const auto profile = build_profile(hand_samples(), 200, "margin");
  ASSERT_EQ(profile.points.size(), 5u);
  EXPECT_EQ(profile.samples, 4u);
  EXPECT_EQ(profile.score, "margin");
  const double thresholds[] = {-kInf, 0.2f, 0.3f, 0.4f, kInf};
  const double edge[] = {1.0, 0.75, 0.5, 0.25, 0.0};
  const double accuracy[] = {0.5, 0.75, 1.0, 1.0, 0.75};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(profile.points[i].threshold, thresholds[i]) << i;
    EXPECT_DOUBLE_EQ(profile.points[i].edge_fraction, edge[i]) << i;
    EXPECT_DOUBLE_EQ(profile.points[i].offload_ratio, 1.0 - edge[i]) << i;
    EXPECT_DOUBLE_EQ(profile.points[i].accuracy, accuracy[i]) << i;
  }
}

TEST(Profile, RepeatedScoresGiveOnePointEach) {
  const auto profile =
      build_profile({{0.5f, true, false}, {0.5f, false, true}, {0.7f, true, true}});
  ASSERT_EQ(profile.points.size(), 3u);
  EXPECT_EQ(profile.points[1].threshold, 0.7f);
  EXPECT_NEAR(profile.points[1].edge_fraction, 1.0 / 3, 1e-12);
  EXPECT_NEAR(profile.points[1].accuracy, 2.0 / 3, 1e-12);
}

TEST(Profile, CandidateCountIsBoundedAndOrdered) {
  std::vector<CalibrationSample> samples;
  for (int i = 0; i < 1000; ++i) samples.push_back({float(i) / 1000, i % 3 != 0, true});
  const auto profile = build_profile(samples, 200);
  EXPECT_LE(profile.points.size(), 202u);
  EXPECT_GE(profile.points.size(), 150u);
  EXPECT_EQ(profile.points.front().threshold, -kInf);
  EXPECT_EQ(profile.points.back().threshold, kInf);
  for (size_t i = 1; i < profile.points.size(); ++i) {
    EXPECT_GT(profile.points[i].threshold, profile.points[i - 1].threshold);
    EXPECT_LT(profile.points[i].edge_fraction, profile.points[i - 1].edge_fraction);
  }
  EXPECT_DOUBLE_EQ(profile.points.back().accuracy, 1.0);  // the FM is always right here
}

TEST(Profile, EmptyAndInvalidInput) {
  const auto empty = build_profile({});
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.samples, 0u);
  EXPECT_THROW(build_profile({{std::nanf(""), true, true}}), Error);
}

TEST(Profile, JsonRoundTripKeepsInfiniteThresholds) {
  const auto profile = build_profile(hand_samples(), 200, "margin");
  const json j = json::parse(profile.to_json().dump());
  EXPECT_EQ(j["points"][0]["threshold"], "-inf");
  EXPECT_EQ(j["points"][4]["threshold"], "+inf");
  const auto back = CalibrationProfile::from_json(j, "test");
  ASSERT_EQ(back.points.size(), profile.points.size());
  EXPECT_EQ(back.score, "margin");
  EXPECT_EQ(back.samples, 4u);
  for (size_t i = 0; i < back.points.size(); ++i) {
    EXPECT_EQ(back.points[i].threshold, profile.points[i].threshold);
    EXPECT_DOUBLE_EQ(back.points[i].accuracy, profile.points[i].accuracy);
    EXPECT_DOUBLE_EQ(back.points[i].edge_fraction, profile.points[i].edge_fraction);
  }
}

TEST(Profile, MalformedJsonIsRejected) {
  json j = build_profile(hand_samples()).to_json();
  json bad = j;
  bad["points"] = json::array();
  EXPECT_THROW(CalibrationProfile::from_json(bad, "test"), Error);
  bad = j;
  bad["format"] = "something-else";
  EXPECT_THROW(CalibrationProfile::from_json(bad, "test"), Error);
  bad = j;
  bad["points"][1]["accuracy"] = 1.5;
  EXPECT_THROW(CalibrationProfile::from_json(bad, "test"), Error);
  bad = j;
  std::swap(bad["points"][1], bad["points"][2]);
  EXPECT_THROW(CalibrationProfile::from_json(bad, "test"), Error);
  bad = j;
  bad["points"][1]["threshold"] = "lots";
  EXPECT_THROW(CalibrationProfile::from_json(bad, "test"), Error);
}

TEST(Latency, ModelArithmetic) {
  const auto m = hand_latency();
  EXPECT_DOUBLE_EQ(m.transfer_ms(), 30.0);
  EXPECT_DOUBLE_EQ(m.e2e_ms(1.0), 2.0);
  EXPECT_DOUBLE_EQ(m.e2e_ms(0.0), 42.0);
  EXPECT_DOUBLE_EQ(m.e2e_ms(0.5), 22.0);  // 0.5 * 2 + 0.5 * 42
  EXPECT_DOUBLE_EQ(m.e2e_ms(0.75), 12.0);

  LatencyModel offline = m;
  offline.uplink_bps = 0.0;
  EXPECT_TRUE(std::isinf(offline.transfer_ms()));
  EXPECT_DOUBLE_EQ(offline.e2e_ms(1.0), 2.0);
  EXPECT_TRUE(std::isinf(offline.e2e_ms(0.9)));

  LatencyModel negative = m;
  negative.rtt_ms = -1.0;
  EXPECT_THROW(negative.validate(), Error);
}

TEST(Search, BestAccuracyWithinBudgetPrefersLowerLatencyOnTies) {
  const auto profile = build_profile(hand_samples());
  // Thresholds 0.3 (22 ms) and 0.4 (32 ms) both reach accuracy 1.0.
  const auto c = search_threshold(profile, hand_latency(), 100.0);
  EXPECT_TRUE(c.feasible);
  EXPECT_EQ(c.threshold, 0.3f);
  EXPECT_DOUBLE_EQ(c.expected_accuracy, 1.0);
  EXPECT_DOUBLE_EQ(c.expected_latency_ms, 22.0);
  EXPECT_DOUBLE_EQ(c.offload_ratio, 0.5);
}

TEST(Search, TheBudgetBinds) {
  const auto profile = build_profile(hand_samples());
  const auto c = search_threshold(profile, hand_latency(), 15.0);
  EXPECT_TRUE(c.feasible);
  EXPECT_EQ(c.threshold, 0.2f);
  EXPECT_DOUBLE_EQ(c.expected_accuracy, 0.75);
  EXPECT_DOUBLE_EQ(c.expected_latency_ms, 12.0);
  // Exactly on the budget is within it.
  EXPECT_EQ(search_threshold(profile, hand_latency(), 22.0).threshold, 0.3f);
  EXPECT_EQ(search_threshold(profile, hand_latency(), 21.99).threshold, 0.2f);
}

TEST(Search, InfeasibleBudgetAnswersOnTheEdgeAndSaysSo) {
  const auto profile = build_profile(hand_samples());
  const auto c = search_threshold(profile, hand_latency(), 1.0);  // below t_edge
  EXPECT_FALSE(c.feasible);
  EXPECT_EQ(c.threshold, -kInf);
  EXPECT_DOUBLE_EQ(c.edge_fraction, 1.0);
  EXPECT_DOUBLE_EQ(c.offload_ratio, 0.0);
  EXPECT_DOUBLE_EQ(c.expected_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(c.expected_latency_ms, 2.0);
  const json j = c.to_json();
  EXPECT_EQ(j["threshold"], "-inf");
  EXPECT_EQ(j["feasible"], false);

  // A budget of exactly t_edge admits the all-edge point.
  const auto edge_only = search_threshold(profile, hand_latency(), 2.0);
  EXPECT_TRUE(edge_only.feasible);
  EXPECT_EQ(edge_only.threshold, -kInf);
}

TEST(Search, WithoutAnUplinkOnlyTheEdgeIsFeasible) {
  LatencyModel offline = hand_latency();
  offline.uplink_bps = 0.0;
  const auto c = search_threshold(build_profile(hand_samples()), offline, 1000.0);
  EXPECT_TRUE(c.feasible);
  EXPECT_EQ(c.threshold, -kInf);
  EXPECT_DOUBLE_EQ(c.expected_latency_ms, 2.0);
}

TEST(Search, HandMadeProfileWithoutAnAllEdgePoint) {
  CalibrationProfile profile;
  profile.points = {{0.1, 0.9, 0.80, 0.1}, {0.2, 0.6, 0.95, 0.4}, {0.3, 0.2, 0.97, 0.8}};
  // e2e: 0.9 -> 6 ms, 0.6 -> 18 ms, 0.2 -> 34 ms.
  EXPECT_DOUBLE_EQ(search_threshold(profile, hand_latency(), 20.0).threshold, 0.2);
  EXPECT_DOUBLE_EQ(search_threshold(profile, hand_latency(), 40.0).threshold, 0.3);
  const auto none = search_threshold(profile, hand_latency(), 5.0);
  EXPECT_FALSE(none.feasible);
  EXPECT_EQ(none.threshold, -kInf);
  EXPECT_DOUBLE_EQ(none.expected_accuracy, 0.80);  // its highest edge fraction
}

TEST(Search, EmptyProfileIsAnError) {
  EXPECT_THROW(search_threshold(CalibrationProfile{}, hand_latency(), 100.0), Error);
  LatencyModel bad = hand_latency();
  bad.t_cloud_ms = std::nan("");
  EXPECT_THROW(search_threshold(build_profile(hand_samples()), bad, 100.0), Error);
}

}  // namespace
}  // namespace edgefm::route
