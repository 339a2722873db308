#include "route/scores.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/error.h"

namespace edgefm::route {
namespace {

const float kSims[] = {0.9f, 0.5f, 0.1f};

float score(const std::string& name, const json& params, const float* sims, int k) {
  return (*make_score(name, params))(sims, k, nullptr, 0);
}

TEST(Scores, MarginAndMaxCosine) {
  EXPECT_NEAR(score("margin", {}, kSims, 3), 0.4f, 1e-6f);
  EXPECT_NEAR(score("max_cosine", {}, kSims, 3), 0.9f, 1e-6f);
}

TEST(Scores, SoftmaxFamilyAgainstHandComputedValues) {
  // T = 1: p = e^{s} / (e^0.9 + e^0.5 + e^0.1).
  EXPECT_NEAR(score("max_softmax", {{"temperature", 1.0}}, kSims, 3), 0.4717762f, 1e-6f);
  EXPECT_NEAR(score("entropy", {{"temperature", 1.0}}, kSims, 3), -1.0473331f, 1e-5f);
  EXPECT_NEAR(score("energy", {{"temperature", 1.0}}, kSims, 3), 1.6512505f, 1e-5f);
  // T = 0.1 sharpens the distribution.
  EXPECT_NEAR(score("max_softmax", {{"temperature", 0.1}}, kSims, 3), 0.9816904f, 1e-6f);
  EXPECT_NEAR(score("entropy", {{"temperature", 0.1}}, kSims, 3), -0.0930350f, 1e-5f);
  EXPECT_NEAR(score("energy", {{"temperature", 0.1}}, kSims, 3), 0.9018479f, 1e-5f);
  // MCM: the max softmax of cosines with its own temperature, 1 by default.
  EXPECT_NEAR(score("mcm", {}, kSims, 3), 0.4717762f, 1e-6f);
  EXPECT_NEAR(score("mcm", {{"temperature", 0.1}}, kSims, 3), 0.9816904f, 1e-6f);
}

TEST(Scores, UniformSimilaritiesAreLeastConfident) {
  const float flat[] = {0.3f, 0.3f, 0.3f, 0.3f};
  EXPECT_NEAR(score("margin", {}, flat, 4), 0.0f, 1e-7f);
  EXPECT_NEAR(score("max_softmax", {}, flat, 4), 0.25f, 1e-6f);
  EXPECT_NEAR(score("entropy", {}, flat, 4), -std::log(4.0f), 1e-5f);
  // energy: T log(4 e^{0.3/T}) = 0.3 + T log 4
  EXPECT_NEAR(score("energy", {}, flat, 4), 0.3f + kDefaultTemperature * std::log(4.0f), 1e-5f);
}

TEST(Scores, LargeSimilaritiesOverSmallTemperatureStayFinite) {
  const float sims[] = {1.0f, -1.0f, 0.99f};
  for (const auto& name : {"max_softmax", "entropy", "energy", "mcm"}) {
    const float v = score(name, {{"temperature", 0.001}}, sims, 3);
    EXPECT_TRUE(std::isfinite(v)) << name;
  }
  EXPECT_NEAR(score("energy", {{"temperature", 0.001}}, sims, 3), 1.0f, 1e-4f);
}

TEST(Scores, EveryScoreRanksAPeakedRowAboveAFlatOne) {
  const float peaked[] = {0.9f, 0.2f, 0.1f};
  const float flat[] = {0.4f, 0.39f, 0.38f};
  for (const auto& name : {"margin", "max_cosine", "max_softmax", "entropy", "energy", "mcm"}) {
    EXPECT_GT(score(name, {}, peaked, 3), score(name, {}, flat, 3)) << name;
  }
}

TEST(Scores, KnnIsTheCosineToTheKthNearestBankRow) {
  // Bank rows at cosines 1, 0, -1, 0.6 from the query (1, 0).
  const std::vector<float> bank = {1, 0, 0, 1, -1, 0, 0.6f, 0.8f};
  const float query[] = {2.0f, 0.0f};  // not normalised: the score normalises it
  EXPECT_NEAR(KnnScore(1, 2, bank)(nullptr, 0, query, 2), 1.0f, 1e-6f);
  EXPECT_NEAR(KnnScore(2, 2, bank)(nullptr, 0, query, 2), 0.6f, 1e-6f);
  EXPECT_NEAR(KnnScore(3, 2, bank)(nullptr, 0, query, 2), 0.0f, 1e-6f);
  EXPECT_NEAR(KnnScore(4, 2, bank)(nullptr, 0, query, 2), -1.0f, 1e-6f);
  EXPECT_THROW(KnnScore(5, 2, bank), Error);
  KnnScore knn(2, 2, bank);
  EXPECT_THROW(knn(nullptr, 0, query, 3), Error);   // wrong dimension
  EXPECT_THROW(knn(nullptr, 0, nullptr, 2), Error);  // no embedding
}

TEST(Scores, KnnWithLargeKUsesTheHeapBuffer) {
  std::vector<float> bank;
  for (int i = 0; i < 100; ++i) {
    const float angle = 0.01f * i;  // row i at cosine cos(0.01 i) from (1, 0)
    bank.push_back(std::cos(angle));
    bank.push_back(std::sin(angle));
  }
  const float query[] = {1.0f, 0.0f};
  EXPECT_NEAR(KnnScore(80, 2, bank)(nullptr, 0, query, 2), std::cos(0.79f), 1e-5f);
}

TEST(Scores, KnnFitSubsamplesDeterministically) {
  std::vector<float> rows;
  for (int i = 0; i < 50; ++i) {
    rows.push_back(float(i + 1));
    rows.push_back(1.0f);
  }
  const auto a = KnnScore::fit(rows.data(), 50, 2, {3, 20, 7});
  const auto b = KnnScore::fit(rows.data(), 50, 2, {3, 20, 7});
  EXPECT_EQ(a->bank_rows(), 20u);
  EXPECT_EQ(a->params(), b->params());
  const auto all = KnnScore::fit(rows.data(), 50, 2, {3, 1000, 7});
  EXPECT_EQ(all->bank_rows(), 50u);
  EXPECT_THROW(KnnScore::fit(rows.data(), 2, 2, {3, 1000, 7}), Error);
}

TEST(Scores, ProtoIsTheMaxCosineToClassMeans) {
  const float embeddings[] = {1, 0, 0.6f, 0.8f, 0, 1};
  const int labels[] = {0, 0, 2};
  const auto proto = ProtoScore::fit(embeddings, labels, 3, 2, 3);
  EXPECT_EQ(proto->classes(), (std::vector<int>{0, 2}));  // class 1 had no sample
  const float up[] = {0, 1}, right[] = {1, 0}, left[] = {-1, 0};
  // Prototype of class 0: normalise((1 + 0.6) / 2, (0 + 0.8) / 2) = (0.894427, 0.447214).
  EXPECT_NEAR((*proto)(nullptr, 0, up, 2), 1.0f, 1e-6f);
  EXPECT_NEAR((*proto)(nullptr, 0, right, 2), 0.8944272f, 1e-6f);
  EXPECT_NEAR((*proto)(nullptr, 0, left, 2), 0.0f, 1e-6f);
  const int bad[] = {0, 3, 2};
  EXPECT_THROW(ProtoScore::fit(embeddings, bad, 3, 2, 3), Error);
  EXPECT_THROW(ProtoScore::fit(embeddings, labels, 0, 2, 3), Error);
}

TEST(Scores, MahalanobisAgainstHandComputedDistances) {
  // Class 0: two unit rows at +-30 degrees, mean (cos 30, 0), within-class spread (0, +-0.5).
  // Class 1: (0, 1) twice. Pooled covariance diag(0, 0.125), trace / d = 0.0625; shrinkage 0.5
  // gives diag(0.03125, 0.09375).
  const float c30 = std::sqrt(3.0f) / 2.0f;
  const float embeddings[] = {c30, 0.5f, c30, -0.5f, 0, 1, 0, 1};
  const int labels[] = {0, 0, 1, 1};
  const auto maha = MahalanobisScore::fit(embeddings, labels, 4, 2, 2, {.shrinkage = 0.5});
  EXPECT_EQ(maha->classes(), (std::vector<int>{0, 1}));
  const float right[] = {1, 0}, up[] = {0, 1}, mid[] = {0.6f, 0.8f}, scaled_mid[] = {3, 4};
  const float d_right = (1 - c30) * (1 - c30) / 0.03125f;  // to class 0
  const float d_mid = std::min((0.6f - c30) * (0.6f - c30) / 0.03125f + 0.64f / 0.09375f,
                               0.36f / 0.03125f + 0.04f / 0.09375f);
  EXPECT_NEAR((*maha)(nullptr, 0, right, 2), -d_right, 1e-4f);
  EXPECT_NEAR((*maha)(nullptr, 0, up, 2), 0.0f, 1e-4f);
  EXPECT_NEAR((*maha)(nullptr, 0, mid, 2), -d_mid, 1e-3f);
  EXPECT_NEAR((*maha)(nullptr, 0, scaled_mid, 2), -d_mid, 1e-3f);  // normalised on the way in
  // Without shrinkage the covariance is singular (no spread along x): a clear error.
  EXPECT_THROW(MahalanobisScore::fit(embeddings, labels, 4, 2, 2, {.shrinkage = 0.0}), Error);
  EXPECT_THROW(MahalanobisScore::fit(embeddings, labels, 4, 2, 2, {.shrinkage = 1.0}), Error);
  const int bad[] = {0, 0, 2, 1};
  EXPECT_THROW(MahalanobisScore::fit(embeddings, bad, 4, 2, 2), Error);
  const int lonely[] = {0, 1, 1, 1};  // class 0 has one row: no mean for it
  EXPECT_EQ(MahalanobisScore::fit(embeddings, lonely, 4, 2, 2)->classes(), (std::vector<int>{1}));
  EXPECT_THROW(make_score("mahalanobis", {{"dim", 2}, {"classes", {0}}}), Error);  // unfitted
}

TEST(Scores, QuantileMapIsThePercentileAmongTheFitValues) {
  const auto map = QuantileMap::fit({4, 0, 2, 1, 3}, 5);  // quantiles 0 1 2 3 4
  EXPECT_FLOAT_EQ(map(-1), 0.0f);
  EXPECT_FLOAT_EQ(map(0), 0.0f);
  EXPECT_FLOAT_EQ(map(1), 0.25f);
  EXPECT_FLOAT_EQ(map(2.5f), 0.625f);
  EXPECT_FLOAT_EQ(map(4), 1.0f);
  EXPECT_FLOAT_EQ(map(9), 1.0f);
  EXPECT_THROW(QuantileMap({1.0f}), Error);
  EXPECT_THROW(QuantileMap({2.0f, 1.0f}), Error);
  EXPECT_THROW(QuantileMap::fit({1.0f}), Error);
}

TEST(Scores, HybridIsTheLowerOfTheTwoPercentiles) {
  // Two classes on the unit circle; the fit rows' margins are 0.1, 0.3, 0.5, 0.7.
  const float c = std::sqrt(0.5f);
  const float embeddings[] = {1, 0, c, c, 0, 1, -c, c};
  const int labels[] = {0, 0, 1, 1};
  const float sims[] = {0.55f, 0.45f, 0.65f, 0.35f, 0.25f, 0.75f, 0.15f, 0.85f};
  const auto hybrid = HybridScore::fit(embeddings, sims, labels, 4, 2, 2, {.shrinkage = 0.5});
  const auto maha = MahalanobisScore::fit(embeddings, labels, 4, 2, 2, {.shrinkage = 0.5});
  std::vector<float> distances;
  for (int i = 0; i < 4; ++i) distances.push_back((*maha)(nullptr, 0, embeddings + 2 * i, 2));
  const auto typical = QuantileMap::fit(distances);
  const auto margins = QuantileMap::fit({0.1f, 0.3f, 0.5f, 0.7f});
  // An ambiguous but typical sample: the margin's percentile decides.
  const float ambiguous[] = {0.5f, 0.5f};
  EXPECT_FLOAT_EQ((*hybrid)(ambiguous, 2, embeddings, 2),
                  std::min(margins(0.0f), typical((*maha)(nullptr, 0, embeddings, 2))));
  EXPECT_FLOAT_EQ((*hybrid)(ambiguous, 2, embeddings, 2), 0.0f);
  // A confident but atypical sample (pointing down): the Mahalanobis percentile decides.
  const float confident[] = {0.9f, 0.1f}, down[] = {0, -1};
  EXPECT_FLOAT_EQ((*hybrid)(confident, 2, down, 2), typical((*maha)(nullptr, 0, down, 2)));
  EXPECT_LT((*hybrid)(confident, 2, down, 2), 0.1f);
  EXPECT_THROW(HybridScore::fit(embeddings, nullptr, labels, 4, 2, 2), Error);  // needs sims
}

TEST(Scores, FactoryKnowsEveryNameAndRejectsTypos) {
  const auto names = score_names();
  EXPECT_EQ(names.size(), 10u);
  for (const auto& name : names) {
    if (score_needs_fit(name)) {
      EXPECT_THROW(make_score(name), Error) << name;  // no fitted state
    } else {
      EXPECT_EQ(make_score(name)->name(), name);
    }
  }
  try {
    make_score("margn");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("margin"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_score("margin", {{"temperature", 1.0}}), Error);
  EXPECT_THROW(make_score("energy", {{"temprature", 1.0}}), Error);
  EXPECT_THROW(make_score("mcm", {{"temperature", 0.0}}), Error);
  EXPECT_THROW(make_score("mcm", {{"temperature", "hot"}}), Error);
  EXPECT_THROW(make_score("knn", {{"k", 1}, {"dim", 2}, {"bank", "AAA"}}), Error);
  EXPECT_THROW(make_score("knn", {{"k", 1}, {"dim", 2}, {"bank", "AAAA"}}), Error);  // 3 bytes
}

TEST(Scores, EveryScoreRoundTripsThroughJsonWithItsState) {
  const float train[] = {1, 0, 0, 0.8f, 0.6f, 0, 0, 1, 0, 0, 0.6f, 0.8f, 0, 0, 1};
  const int labels[] = {0, 0, 1, 1, 2};
  const float train_sims[] = {0.9f, 0.1f, 0.0f, 0.7f, 0.6f, 0.0f, 0.1f, 0.9f, 0.0f,
                               0.0f, 0.6f, 0.7f, 0.0f, 0.0f, 0.9f};
  const float sims[] = {0.7f, 0.2f, 0.6f};
  const float embedding[] = {0.7f, 0.1f, 0.7f};
  for (const auto& name : score_names()) {
    const json fit_params = name == "knn" ? json{{"k", 2}} : json::object();
    const auto fitted = fit_score(name, fit_params, train, labels, 5, 3, 3, train_sims);
    EXPECT_EQ(fitted->name(), name);
    const json saved = score_to_json(*fitted);
    const auto loaded = score_from_json(json::parse(saved.dump()), "test");
    EXPECT_EQ(loaded->name(), name);
    EXPECT_FLOAT_EQ((*loaded)(sims, 3, embedding, 3), (*fitted)(sims, 3, embedding, 3)) << name;
  }
}

TEST(Scores, BatchMatchesOneAtATime) {
  const float sims[] = {0.9f, 0.5f, 0.1f, 0.2f, 0.3f, 0.25f};
  for (const auto& name : {"margin", "max_softmax", "entropy", "energy", "mcm"}) {
    const auto s = make_score(name);
    float out[2];
    s->score_batch(sims, 2, 3, nullptr, 0, out);
    EXPECT_FLOAT_EQ(out[0], (*s)(sims, 3, nullptr, 0)) << name;
    EXPECT_FLOAT_EQ(out[1], (*s)(sims + 3, 3, nullptr, 0)) << name;
  }
}

}  // namespace
}  // namespace edgefm::route
