// Where the scenario reads the loop's recovery (harness/scenario.h, recovery_period): the windows
// of the final model after the one it arrived in, and the answers' ids in them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness/scenario.h"

namespace edgefm::harness {
namespace {

// One answer per 0.5 s (rate 2/s): windows of 2 s hold 4 answers each.
struct Stream {
  std::vector<json> answers;
  void add(size_t n, const std::string& version, bool edge, bool correct) {
    for (size_t i = 0; i < n; ++i) {
      const size_t id = answers.size();
      answers.push_back({{"id", id},
                         {"arrival_s", 0.5 * static_cast<double>(id) + 0.01},
                         {"route", edge ? "edge" : "cloud"},
                         {"correct", correct},
                         {"model_version", version}});
    }
  }
};

TEST(RecoveryPeriod, WindowsOfTheFinalModelAfterTheOneItArrivedIn) {
  Stream s;
  s.add(8, "1", true, true);    // windows 0, 1
  s.add(4, "1", false, false);  // window 2
  s.add(1, "1", false, false);  // window 3: the swap window, mostly the new model
  s.add(3, "2", true, false);
  s.add(12, "2", true, true);   // windows 4, 5, 6
  s.add(1, "2", true, false);   // a partial last window (7), left out
  const auto timeline = build_timeline(s.answers, {}, {}, 2.0);
  ASSERT_EQ(timeline.size(), 8u);
  const RecoveryPeriod p = recovery_period(timeline, s.answers, 2, 2.0, 2.0);
  EXPECT_TRUE(p.final_model);
  EXPECT_EQ(p.model_version, "2");
  EXPECT_EQ(p.windows, 3u);
  EXPECT_DOUBLE_EQ(p.from_s, 8.0);
  EXPECT_DOUBLE_EQ(p.to_s, 14.0);
  EXPECT_EQ(p.samples, 12u);
  EXPECT_DOUBLE_EQ(p.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(p.edge_share, 1.0);
  ASSERT_EQ(p.ids.size(), 12u);
  EXPECT_EQ(p.ids.front(), 16u);
  EXPECT_EQ(p.ids.back(), 27u);
  EXPECT_FALSE(p.to_json().contains("ids"));
}

TEST(RecoveryPeriod, SwapWindowIsLeftOut) {
  Stream s;
  s.add(8, "1", true, true);   // windows 0, 1
  s.add(1, "1", false, false);  // window 2: one answer of the old model ...
  s.add(3, "2", true, false);   // ... three of the new one (its window, counted as "2")
  s.add(8, "2", true, true);    // windows 3, 4
  const auto timeline = build_timeline(s.answers, {}, {}, 2.0);
  ASSERT_EQ(timeline.size(), 5u);
  EXPECT_EQ(timeline[2].model_version, "2");
  const RecoveryPeriod p = recovery_period(timeline, s.answers, 1, 2.0, 2.0);
  EXPECT_TRUE(p.final_model);
  EXPECT_EQ(p.windows, 2u);  // windows 3 and 4, not the swap window 2
  EXPECT_DOUBLE_EQ(p.from_s, 6.0);
  EXPECT_DOUBLE_EQ(p.to_s, 10.0);
  EXPECT_EQ(p.samples, 8u);
  EXPECT_DOUBLE_EQ(p.accuracy, 1.0);
  ASSERT_EQ(p.ids.size(), 8u);
  EXPECT_EQ(p.ids.front(), 12u);
  EXPECT_EQ(p.ids.back(), 19u);
}

TEST(RecoveryPeriod, FallsBackToTheLastFullWindowsWhenTheFinalModelCameLate) {
  Stream s;
  s.add(16, "1", true, true);   // windows 0-3
  s.add(2, "1", false, false);  // window 4: half old ...
  s.add(2, "2", false, false);  // ... half new
  s.add(1, "2", true, true);    // a partial window 5
  const auto timeline = build_timeline(s.answers, {}, {}, 2.0);
  const RecoveryPeriod p = recovery_period(timeline, s.answers, 1, 2.0, 2.0);
  EXPECT_FALSE(p.final_model);
  EXPECT_EQ(p.windows, 2u);  // windows 3 and 4, the last full ones
  EXPECT_DOUBLE_EQ(p.from_s, 6.0);
  EXPECT_DOUBLE_EQ(p.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(p.edge_share, 0.5);
  EXPECT_EQ(p.ids.size(), 8u);
}

TEST(RecoveryPeriod, EmptyTimeline) {
  const RecoveryPeriod p = recovery_period({}, {}, 0, 10.0, 50.0);
  EXPECT_EQ(p.windows, 0u);
  EXPECT_TRUE(p.ids.empty());
}

}  // namespace
}  // namespace edgefm::harness
