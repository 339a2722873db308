#include "customize/select.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.h"

namespace edgefm::customize {
namespace {

using Indices = std::vector<size_t>;

// Three clusters of uncertain samples and one confident outlier (2-D embeddings):
//   0 (0, 0) 0.01   1 (0.1, 0) 0.02   2 (0, 0.1) 0.03     cluster A
//   3 (5, 5) 0.04   4 (5.1, 5) 0.05                       cluster B
//   5 (-5, 5) 0.06                                        cluster C
//   6 (100, 100) 0.9                                      confident, far away
const std::vector<float> kScores = {0.01f, 0.02f, 0.03f, 0.04f, 0.05f, 0.06f, 0.9f};
const std::vector<float> kEmbeddings = {0, 0, 0.1f, 0, 0, 0.1f, 5, 5, 5.1f, 5, -5, 5, 100, 100};

TEST(Strategy, NamesRoundTrip) {
  for (const auto& name : selection_strategy_names()) {
    EXPECT_EQ(selection_strategy_name(parse_selection_strategy(name)), name);
  }
  EXPECT_THROW(parse_selection_strategy("lowest-margin"), Error);
}

TEST(Budget, FractionsAndCounts) {
  EXPECT_EQ(UploadBudget::parse("20%").resolve(100), 20u);
  EXPECT_EQ(UploadBudget::parse("0.2").resolve(100), 20u);
  EXPECT_EQ(UploadBudget::parse("0.29").resolve(100), 29u);  // not 28 from binary rounding
  EXPECT_EQ(UploadBudget::parse("0.2").resolve(7), 1u);      // floor: never above the fraction
  EXPECT_EQ(UploadBudget::parse("500").resolve(100), 100u);
  EXPECT_EQ(UploadBudget::parse("500").resolve(1000), 500u);
  EXPECT_EQ(UploadBudget::parse("1").resolve(1000), 1u);
  EXPECT_EQ(UploadBudget::parse("1.0").resolve(1000), 1000u);
  EXPECT_EQ(UploadBudget::parse("0").resolve(1000), 0u);
  EXPECT_EQ(UploadBudget::parse("20%").to_string(), "20%");
  EXPECT_EQ(UploadBudget::parse("500").to_string(), "500");
  for (const char* bad : {"", "abc", "-1", "1.5", "150%", "1e3", "0x10", ".", "1.2.3", "%"}) {
    EXPECT_THROW(UploadBudget::parse(bad), Error) << bad;
  }
}

TEST(Select, LowestMarginTakesTheLeastConfident) {
  const std::vector<float> scores = {0.5f, 0.1f, 0.3f, 0.1f, 0.9f};
  EXPECT_EQ(select_for_upload(SelectionStrategy::lowest_margin, scores, nullptr, 0, 3, 1),
            (Indices{1, 3, 2}));  // tie between 1 and 3: lower index first
  EXPECT_EQ(select_for_upload(SelectionStrategy::lowest_margin, scores, nullptr, 0, 10, 1).size(),
            5u);
  const std::vector<float> with_nan = {std::nanf(""), 0.2f, 0.1f};
  EXPECT_EQ(select_for_upload(SelectionStrategy::lowest_margin, with_nan, nullptr, 0, 3, 1),
            (Indices{2, 1, 0}));
}

TEST(Select, RandomIsDeterministicBySeedAndRespectsTheBudget) {
  const std::vector<float> scores(100, 0.5f);
  const auto a = select_for_upload(SelectionStrategy::random, scores, nullptr, 0, 10, 42);
  const auto b = select_for_upload(SelectionStrategy::random, scores, nullptr, 0, 10, 42);
  const auto c = select_for_upload(SelectionStrategy::random, scores, nullptr, 0, 10, 43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.size(), 10u);
  EXPECT_EQ(std::set<size_t>(a.begin(), a.end()).size(), 10u);
  for (size_t i : a) EXPECT_LT(i, 100u);
  EXPECT_TRUE(select_for_upload(SelectionStrategy::random, scores, nullptr, 0, 0, 1).empty());
  const auto all = select_for_upload(SelectionStrategy::random, scores, nullptr, 0, 1000, 1);
  EXPECT_EQ(std::set<size_t>(all.begin(), all.end()).size(), 100u);
}

TEST(Select, MarginDiversityPicksOnePerCluster) {
  // Candidates: the 2 x 3 = 6 lowest scores (the outlier is not one). From sample 0, the
  // farthest is 4 (5.1, 5), then 5 (-5, 5); lowest_margin would take all three of cluster A.
  EXPECT_EQ(select_for_upload(SelectionStrategy::margin_diversity, kScores, kEmbeddings.data(),
                              2, 3, 1, {2}),
            (Indices{0, 4, 5}));
  EXPECT_EQ(select_for_upload(SelectionStrategy::lowest_margin, kScores, nullptr, 2, 3, 1),
            (Indices{0, 1, 2}));
  // With 4 x 3 candidates the confident outlier is a candidate and, being farthest, is taken.
  EXPECT_EQ(select_for_upload(SelectionStrategy::margin_diversity, kScores, kEmbeddings.data(),
                              2, 3, 1),
            (Indices{0, 6, 4}));
  EXPECT_THROW(select_for_upload(SelectionStrategy::margin_diversity, kScores, nullptr, 2, 3, 1),
               Error);
  EXPECT_EQ(select_for_upload(SelectionStrategy::margin_diversity, kScores, kEmbeddings.data(),
                              2, 100, 1).size(),
            7u);
}

TEST(KCenter, StartsFarthestFromExistingCentresAndStopsAtMinDistance) {
  const std::vector<float> rows = {1, 0, 3, 0, 0, 2};
  const std::vector<size_t> candidates = {0, 1, 2};
  const float center[] = {0, 0};
  // Farthest from (0, 0) is (3, 0); then (0, 2) at distance 2 beats (1, 0) at 1.
  EXPECT_EQ(k_center_greedy(rows.data(), 2, candidates, 3, center, 1), (Indices{1, 2, 0}));
  EXPECT_EQ(k_center_greedy(rows.data(), 2, candidates, 3, center, 1, 2.5f), (Indices{1}));
  // Without centres: from (1, 0), (0, 2) at distance sqrt(5) beats (3, 0) at 2.
  EXPECT_EQ(k_center_greedy(rows.data(), 2, candidates, 2), (Indices{0, 2}));
  EXPECT_TRUE(k_center_greedy(rows.data(), 2, candidates, 0).empty());
}

TEST(TokenBucket, RefillsAtItsRateUpToItsCapacity) {
  TokenBucket bucket(1.0, 5.0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.try_take(1.0, 0.0));
  EXPECT_FALSE(bucket.try_take(1.0, 0.0));
  EXPECT_NEAR(bucket.available(2.0), 2.0, 1e-12);
  EXPECT_FALSE(bucket.try_take(3.0, 2.0));
  EXPECT_TRUE(bucket.try_take(2.0, 2.0));
  EXPECT_NEAR(bucket.available(100.0), 5.0, 1e-12);  // capped
  // Time going backwards neither refills nor breaks it.
  EXPECT_NEAR(bucket.available(50.0), 5.0, 1e-12);
  EXPECT_THROW(TokenBucket(0.0, 1.0), Error);
}

TEST(TokenBucket, AFullBucketLetsAnOversizedItemThroughAsADebt) {
  TokenBucket bucket(1.0, 5.0);
  EXPECT_TRUE(bucket.try_take(8.0, 0.0));
  EXPECT_NEAR(bucket.available(0.0), -3.0, 1e-12);
  EXPECT_FALSE(bucket.try_take(1.0, 1.0));  // -2
  EXPECT_TRUE(bucket.try_take(1.0, 4.0));   // 1
}

UploadSelectorParams generous(SelectionStrategy strategy) {
  UploadSelectorParams p;
  p.strategy = strategy;
  p.upload_threshold = 0.1f;
  p.samples_per_minute = 6000;
  p.uplink_kbps = 1e6;
  p.window_size = 4;
  p.window_seconds = 5.0;
  return p;
}

TEST(UploadSelector, OnlySamplesBelowTheThresholdAreCandidates) {
  UploadSelector selector(generous(SelectionStrategy::lowest_margin), 1);
  const float e[] = {0};
  EXPECT_TRUE(selector.offer(1, 0.5f, e, 100, 0.0).empty());
  EXPECT_TRUE(selector.offer(2, 0.1f, e, 100, 0.0).empty());  // not strictly below
  EXPECT_TRUE(selector.offer(3, 0.05f, e, 100, 0.0).empty());
  EXPECT_EQ(selector.flush(0.0), (std::vector<uint64_t>{3}));
  EXPECT_EQ(selector.stats().offered, 3u);
  EXPECT_EQ(selector.stats().candidates, 1u);
  EXPECT_EQ(selector.stats().uploaded, 1u);
  EXPECT_EQ(selector.stats().uploaded_bytes, 100u);
}

TEST(UploadSelector, WindowsCloseBySizeAndByAge) {
  UploadSelector selector(generous(SelectionStrategy::lowest_margin), 1);
  const float e[] = {0};
  EXPECT_TRUE(selector.offer(1, 0.04f, e, 10, 0.0).empty());
  EXPECT_TRUE(selector.offer(2, 0.01f, e, 10, 0.1).empty());
  EXPECT_TRUE(selector.offer(3, 0.03f, e, 10, 0.2).empty());
  EXPECT_EQ(selector.offer(4, 0.02f, e, 10, 0.3), (std::vector<uint64_t>{2, 4, 3, 1}));
  EXPECT_TRUE(selector.offer(5, 0.05f, e, 10, 1.0).empty());
  // Six seconds later the window is stale: it closes before the new sample joins a new one.
  EXPECT_EQ(selector.offer(6, 0.5f, e, 10, 7.0), (std::vector<uint64_t>{5}));
  EXPECT_TRUE(selector.flush(7.0).empty());
}

TEST(UploadSelector, SamplesPerMinuteCapUnderASteadyStream) {
  UploadSelectorParams p = generous(SelectionStrategy::lowest_margin);
  p.samples_per_minute = 30;  // capacity: 10 s of budget = 5 samples
  p.burst_seconds = 10;
  UploadSelector selector(p, 1);
  const float e[] = {0};
  size_t uploaded = 0;
  for (int i = 0; i < 6000; ++i) {  // 10 samples/s for 600 s, all uncertain
    uploaded += selector.offer(uint64_t(i), 0.0f, e, 100, i * 0.1).size();
  }
  uploaded += selector.flush(600.0).size();
  EXPECT_LE(uploaded, 5u + 300u);
  EXPECT_GE(uploaded, 295u);
  EXPECT_EQ(uploaded, selector.stats().uploaded);
  EXPECT_GT(selector.stats().skipped_budget, 5000u);
}

TEST(UploadSelector, UplinkKbitCapUnderASteadyStream) {
  UploadSelectorParams p = generous(SelectionStrategy::random);
  p.uplink_kbps = 8;  // 1000 bytes/s, 10 000 bytes of burst
  p.burst_seconds = 10;
  UploadSelector selector(p, 1);
  const float e[] = {0};
  for (int i = 0; i < 6000; ++i) selector.offer(uint64_t(i), 0.0f, e, 500, i * 0.1);
  selector.flush(600.0);
  const auto& s = selector.stats();
  EXPECT_LE(s.uploaded_bytes, 10000u + 600u * 1000u);
  EXPECT_GE(s.uploaded_bytes, 590u * 1000u);
  EXPECT_EQ(s.uploaded_bytes, s.uploaded * 500u);
}

TEST(UploadSelector, DiversityAvoidsWhatWasJustUploaded) {
  UploadSelectorParams p = generous(SelectionStrategy::margin_diversity);
  p.samples_per_minute = 6;  // one sample of capacity, one more every 10 s
  p.window_size = 2;
  const float near_a[] = {0.1f, 0}, near_b[] = {0.05f, 0}, far[] = {20, 0};
  UploadSelector selector(p, 2);
  selector.offer(1, 0.05f, near_a, 10, 0.0);
  // No centres yet: the lowest score goes first; the budget allows only it.
  EXPECT_EQ(selector.offer(2, 0.01f, near_b, 10, 0.0), (std::vector<uint64_t>{2}));
  selector.offer(3, 0.01f, near_a, 10, 20.0);
  // Sample 3 is next to the upload; the far one is chosen despite its higher score.
  EXPECT_EQ(selector.offer(4, 0.08f, far, 10, 20.0), (std::vector<uint64_t>{4}));

  UploadSelectorParams q = p;
  q.strategy = SelectionStrategy::lowest_margin;
  UploadSelector plain(q, 2);
  plain.offer(1, 0.05f, near_a, 10, 0.0);
  plain.offer(2, 0.01f, near_b, 10, 0.0);
  plain.offer(3, 0.01f, near_a, 10, 20.0);
  EXPECT_EQ(plain.offer(4, 0.08f, far, 10, 20.0), (std::vector<uint64_t>{3}));
}

TEST(UploadSelector, MinDistanceDropsNearDuplicates) {
  UploadSelectorParams p = generous(SelectionStrategy::margin_diversity);
  p.window_size = 3;
  p.min_distance = 1.0f;
  UploadSelector selector(p, 2);
  const float a[] = {0, 0}, a2[] = {0.2f, 0}, b[] = {3, 0};
  selector.offer(1, 0.01f, a, 10, 0.0);
  selector.offer(2, 0.02f, a2, 10, 0.0);
  EXPECT_EQ(selector.offer(3, 0.03f, b, 10, 0.0), (std::vector<uint64_t>{1, 3}));
}

TEST(UploadSelector, RandomStrategyIsDeterministicBySeed) {
  auto run = [](uint64_t seed) {
    UploadSelectorParams p = generous(SelectionStrategy::random);
    p.seed = seed;
    p.samples_per_minute = 60;  // 10 samples of burst, 1/s
    p.window_size = 8;
    UploadSelector selector(p, 1);
    std::vector<uint64_t> all;
    const float e[] = {0};
    for (int i = 0; i < 400; ++i) {
      auto got = selector.offer(uint64_t(i), 0.0f, e, 1, i * 0.05);
      all.insert(all.end(), got.begin(), got.end());
    }
    return all;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

TEST(UploadSelector, RejectsBadParameters) {
  UploadSelectorParams p;
  EXPECT_THROW(UploadSelector(p, 0), Error);
  p.samples_per_minute = 0;
  EXPECT_THROW(UploadSelector(p, 2), Error);
  p = UploadSelectorParams{};
  p.window_size = 0;
  EXPECT_THROW(UploadSelector(p, 2), Error);
}

}  // namespace
}  // namespace edgefm::customize
