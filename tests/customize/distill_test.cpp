#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "common/error.h"
#include "customize/distill.h"
#include "models/text_pool.h"

using namespace edgefm;
using namespace edgefm::customize;

TEST(DistillLoss, MseMatchesHandComputedValue) {
  // ||(1,0)-(0.6,0.8)||^2 = 0.16 + 0.64 = 0.8; second pair identical -> mean 0.4
  const float student[] = {1, 0, 0, 1};
  const float fm[] = {0.6f, 0.8f, 0, 1};
  EXPECT_NEAR(mse_loss(student, fm, 2, 2), 0.4, 1e-6);
}

TEST(DistillLoss, InfoNceMatchesHandComputedValue) {
  const float student[] = {1, 0, 0, 1};
  const float pool[] = {1, 0, 0, 1};
  const int right[] = {0, 1};
  // logits / tau = (2, 0): -log(e^2 / (e^2 + 1)) = log(1 + e^-2)
  EXPECT_NEAR(info_nce_loss(student, 2, 2, pool, 2, right, 0.5), std::log1p(std::exp(-2.0)), 1e-6);
  const int wrong[] = {1, 0};
  EXPECT_NEAR(info_nce_loss(student, 2, 2, pool, 2, wrong, 0.5), std::log1p(std::exp(2.0)), 1e-5);
  // a lower temperature sharpens: the right answer costs less
  EXPECT_LT(info_nce_loss(student, 2, 2, pool, 2, right, 0.1),
            info_nce_loss(student, 2, 2, pool, 2, right, 0.5));
}

TEST(DistillLoss, PseudoLabelIsTheNearestPoolVector) {
  models::TextPool pool(2);
  pool.set("x", {1, 0});
  pool.set("y", {0, 1});
  std::vector<float> fm = {0.9f, 0.1f, 0.2f, 0.98f, -1, 0};
  EXPECT_EQ(pseudo_label(fm, pool), (std::vector<int>{0, 1, 1}));
  EXPECT_THROW(pseudo_label({1, 2, 3}, pool), Error);
}

TEST(Distill, RejectsEmptyAndMismatchedSets) {
  models::TextPool pool(4);
  pool.set("x", {1, 0, 0, 0});
  DistillSet empty;
  EXPECT_THROW(distill(empty, pool, distill_default_params()), Error);
  DistillSet wrong;
  wrong.images.assign(784, 0.5f);
  wrong.fm_embeddings.assign(3, 0.0f);  // should be 4
  wrong.pseudo_labels = {0};
  EXPECT_THROW(distill(wrong, pool, distill_default_params()), Error);
}

// Distillation really moves the student towards the FM: on a tiny synthetic task (two
// patterns, two pool vectors) the trained student classifies both correctly.
// 64 images of 28 x 28 lit on the left half (pool vector "left", e_0) or, where right(i), on
// the right half ("right", e_1), with those vectors as the FM's embeddings.
struct HalvesTask {
  models::TextPool pool{8};
  DistillSet set;
};
HalvesTask halves_task(const std::function<bool(int)>& right) {
  HalvesTask task;
  std::vector<float> a(8, 0), b(8, 0);
  a[0] = 1;
  b[1] = 1;
  task.pool.set("left", a);
  task.pool.set("right", b);
  for (int i = 0; i < 64; ++i) {
    const bool left = !right(i);
    for (int r = 0; r < 28; ++r) {
      for (int c = 0; c < 28; ++c) task.set.images.push_back((c < 14) == left ? 1.0f : 0.0f);
    }
    const auto& target = left ? a : b;
    task.set.fm_embeddings.insert(task.set.fm_embeddings.end(), target.begin(), target.end());
    task.set.pseudo_labels.push_back(left ? 0 : 1);
  }
  return task;
}

TEST(Distill, LearnsASyntheticTwoClassTask) {
  const auto [pool, set] = halves_task([](int i) { return i % 2 == 1; });
  auto params = distill_default_params();
  params.epochs = 10;
  params.batch_size = 16;
  params.augment = false;  // a flip would swap the halves and make the task unlearnable
  auto result = distill(set, pool, params);
  ASSERT_NE(result.student, nullptr);
  EXPECT_EQ(result.summary["samples"], 64);
  std::vector<float> out(2 * 8);
  result.student->embed(set.images.data(), 2, out.data());  // one left, one right image
  EXPECT_GT(out[0], out[1]);          // left image nearest "left"
  EXPECT_GT(out[8 + 1], out[8 + 0]);  // right image nearest "right"
  EXPECT_LT(result.final_mse, 0.5);
}

TEST(Distill, ClassBalancedWeightsGiveEachClassTheSameShare) {
  // 6 samples: class 0 three times, class 1 once, two outliers (kNoLabel).
  const auto w = class_balanced_weights({0, 0, 0, 1, kNoLabel, kNoLabel});
  ASSERT_EQ(w.size(), 6u);
  // Labelled draws are 4/6 of all; half of that per class, split within the class.
  EXPECT_NEAR(w[0], 4.0 / 6.0 / 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(w[2], w[0], 1e-12);
  EXPECT_NEAR(w[3], 4.0 / 6.0 / 2.0, 1e-12);
  EXPECT_NEAR(w[4], 1.0 / 6.0, 1e-12);  // outliers keep their share
  double sum = 0;
  for (double x : w) sum += x;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_THROW(class_balanced_weights({0, -2}), Error);
  EXPECT_THROW(class_balanced_weights({0, 1}, 1.5), Error);
  // Exponent 0.5: class shares in proportion to sqrt(count): 3 -> sqrt 3, 1 -> 1.
  const auto half = class_balanced_weights({0, 0, 0, 1, kNoLabel, kNoLabel}, 0.5);
  const double share0 = 4.0 / 6.0 * std::sqrt(3.0) / (std::sqrt(3.0) + 1.0);
  EXPECT_NEAR(half[0], share0 / 3.0, 1e-12);
  EXPECT_NEAR(half[3], 4.0 / 6.0 - share0, 1e-12);
  EXPECT_NEAR(half[4], 1.0 / 6.0, 1e-12);
  // Exponent 0: every sample the same.
  for (double x : class_balanced_weights({0, 0, 0, 1, kNoLabel, kNoLabel}, 0.0)) {
    EXPECT_NEAR(x, 1.0 / 6.0, 1e-12);
  }
  // Only outliers: uniform.
  const auto u = class_balanced_weights({kNoLabel, kNoLabel});
  EXPECT_NEAR(u[0], 0.5, 1e-12);
}

TEST(Distill, BalancedDrawsLearnARareClassBetter) {
  const auto [pool, set] = halves_task([](int i) { return i == 0; });  // 1 of 64 is "right"
  // Similarity of the rare image's embedding to "right" minus "left", after training with or
  // without balance (same seed, same steps).
  auto rare_similarity = [&](bool balance) {
    auto params = distill_default_params();
    params.epochs = 1;  // 4 steps: drawn as they come, the rare image is seen once at most
    params.batch_size = 16;
    params.augment = false;
    params.balance = balance ? 1.0 : 0.0;
    auto result = distill(set, pool, params);
    EXPECT_EQ(result.summary["balance"], params.balance);
    std::vector<float> out(8);
    result.student->embed(set.images.data(), 1, out.data());  // sample 0 is the rare one
    return out[1] - out[0];
  };
  const double balanced = rare_similarity(true);
  const double drawn_as_they_come = rare_similarity(false);
  EXPECT_GT(balanced, drawn_as_they_come);
  EXPECT_GT(balanced, 0.0);  // nearer "right" than "left"
}
