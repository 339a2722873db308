#include "route/similarity.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/error.h"

namespace edgefm::route {
namespace {

TEST(Similarity, DotHandlesLengthsThatAreNotAMultipleOfEight) {
  std::vector<float> a(11);
  for (int i = 0; i < 11; ++i) a[i] = float(i + 1);
  EXPECT_FLOAT_EQ(dot(a.data(), a.data(), 11), 506.0f);  // 1^2 + ... + 11^2
  EXPECT_FLOAT_EQ(dot(a.data(), a.data(), 3), 14.0f);
  EXPECT_FLOAT_EQ(dot(a.data(), a.data(), 8), 204.0f);
}

TEST(Similarity, NormalizeScalesToUnitLengthAndLeavesZeroAlone) {
  float v[2] = {3.0f, 4.0f};
  EXPECT_FLOAT_EQ(l2_normalize(v, 2), 5.0f);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  float zero[3] = {0, 0, 0};
  EXPECT_FLOAT_EQ(l2_normalize(zero, 3), 0.0f);
  EXPECT_EQ(zero[0], 0.0f);
  float rows[4] = {0, 2, -5, 0};
  l2_normalize_rows(rows, 2, 2);
  EXPECT_FLOAT_EQ(rows[1], 1.0f);
  EXPECT_FLOAT_EQ(rows[2], -1.0f);
}

TEST(Similarity, CosinesAgainstHandComputedValues) {
  const float embeddings[] = {1, 0, 0,  //
                              0.6f, 0.8f, 0};
  const float pool[] = {1, 0, 0,  //
                        0, 1, 0,  //
                        0.6f, 0, 0.8f};
  float sims[6];
  cosine_similarities(embeddings, 2, pool, 3, 3, sims);
  const float expected[] = {1.0f, 0.0f, 0.6f, 0.6f, 0.8f, 0.36f};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(sims[i], expected[i], 1e-6f) << i;
  EXPECT_NEAR(margin(sims, 3), 0.4f, 1e-6f);
  EXPECT_NEAR(margin(sims + 3, 3), 0.2f, 1e-6f);
  const Top2 t = top2(sims + 3, 3);
  EXPECT_EQ(t.first, 1);
  EXPECT_EQ(t.second, 0);
}

TEST(Similarity, Top2OrdersAndBreaksTiesByIndex) {
  const float sims[] = {-0.2f, 0.7f, 0.1f, 0.7f, 0.65f};
  Top2 t = top2(sims, 5);
  EXPECT_EQ(t.first, 1);
  EXPECT_EQ(t.second, 3);
  EXPECT_FLOAT_EQ(t.margin(), 0.0f);

  const float descending[] = {0.9f, 0.8f, 0.3f};
  t = top2(descending, 3);
  EXPECT_EQ(t.first, 0);
  EXPECT_EQ(t.second, 1);
  EXPECT_NEAR(t.margin(), 0.1f, 1e-6f);

  const float negative[] = {-0.5f, -0.1f, -0.9f};
  t = top2(negative, 3);
  EXPECT_EQ(t.first, 1);
  EXPECT_EQ(t.second, 0);
  EXPECT_NEAR(t.margin(), 0.4f, 1e-6f);
}

TEST(Similarity, Top2OfOneEntryAndOfNone) {
  const float one[] = {0.3f};
  const Top2 t = top2(one, 1);
  EXPECT_EQ(t.first, 0);
  EXPECT_EQ(t.second, -1);
  EXPECT_FLOAT_EQ(t.margin(), 1.3f);  // against the lowest cosine, -1
  EXPECT_THROW(top2(one, 0), Error);
}

}  // namespace
}  // namespace edgefm::route
