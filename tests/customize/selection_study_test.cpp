// The selection comparison of the open-set scenario on the small fixture models: a seen-only
// student, the cloud's pre-shift uploads, a post-shift stream of all classes.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"
#include "common/progress.h"
#include "customize/selection_study.h"
#include "data/dataset.h"
#include "data/split.h"
#include "models/foundation.h"
#include "support/fixtures.h"

namespace edgefm::customize {
namespace {

// Images the fixture models were not trained on (they used the first 4000 training images).
struct StudyData {
  data::Dataset pre_shift;   // 300 seen-class images
  data::Dataset post_shift;  // 400 images of all classes
  data::Dataset evaluation;  // 400 test images
  std::vector<int> unseen;
};

const StudyData& study_data() {
  static const StudyData d = [] {
    Progress::set_quiet(true);
    auto description = data::fashion_mnist_description();
    auto train = data::load_dataset(description, data::Part::train, 6000);
    auto split = data::default_split();
    std::vector<size_t> pre, post;
    for (size_t i = 4000; i < train.size() && post.size() < 400; ++i) {
      if (pre.size() < 300) {
        if (split.is_seen(train.labels[i])) pre.push_back(i);
      } else {
        post.push_back(i);
      }
    }
    StudyData out;
    out.pre_shift = train.subset(pre);
    out.post_shift = train.subset(post);
    out.evaluation = data::load_dataset(description, data::Part::test, 400);
    out.unseen = split.unseen(static_cast<int>(train.class_names.size()));
    return out;
  }();
  return d;
}

const models::FoundationModel& fixture_fm() {
  static const models::FoundationModel fm =
      models::load_foundation_model(edgefm::testing::small_models().fm);
  return fm;
}

SelectionStudyParams quick_params(std::vector<size_t> budgets) {
  auto params = selection_study_default_params();
  params.budgets = std::move(budgets);
  params.random_repeats = 1;
  params.distill.epochs = 3;
  params.distill.batch_size = 64;
  return params;
}

SelectionStudy run(const SelectionStudyParams& params) {
  const auto& d = study_data();
  return run_selection_study(fixture_fm(), edgefm::testing::small_models().seen_student,
                             d.pre_shift, d.post_shift, d.evaluation, d.unseen, params);
}

TEST(SelectionStudy, OneRowPerStrategyAndBudgetInJson) {
  auto params = quick_params({40, 20});
  params.random_repeats = 2;
  std::vector<std::string> lines;
  const auto& d = study_data();
  auto study = run_selection_study(fixture_fm(), edgefm::testing::small_models().seen_student,
                                   d.pre_shift, d.post_shift, d.evaluation, d.unseen, params,
                                   [&](const std::string& line) { lines.push_back(line); });
  ASSERT_EQ(study.rows.size(), 6u);
  EXPECT_EQ(lines.size(), 7u);  // the references, then one line per row
  const std::vector<std::string> strategies = {"random", "lowest_margin", "margin_diversity"};
  for (size_t i = 0; i < study.rows.size(); ++i) {
    const auto& row = study.rows[i];
    EXPECT_EQ(row.strategy, strategies[i / 2]);
    EXPECT_EQ(row.uploaded, i % 2 == 0 ? 20u : 40u);  // budgets ascending
    EXPECT_GE(row.edge_accuracy, 0.0);
    EXPECT_LE(row.edge_accuracy, 1.0);
    EXPECT_GE(row.unseen_share, 0.0);
    EXPECT_LE(row.unseen_share, 1.0);
    // margin_diversity's audit share makes it seeded: averaged like random.
    EXPECT_EQ(row.repeats, row.strategy == "lowest_margin" ? 1u : 2u);
  }
  for (double a : {study.initial_accuracy, study.initial_own_pool_accuracy, study.fm_accuracy}) {
    EXPECT_GT(a, 0.0);
    EXPECT_LE(a, 1.0);
  }
  // A seen-only pool cannot name the 40 % unseen evaluation images; the FM knows all classes.
  EXPECT_LE(study.initial_own_pool_accuracy, 0.7);
  EXPECT_GT(study.fm_accuracy, study.initial_own_pool_accuracy);
  EXPECT_EQ(study.rank_score, "margin");

  auto j = study.to_json();
  ASSERT_EQ(j["rows"].size(), 6u);
  for (const auto& row : j["rows"]) {
    EXPECT_TRUE(row.contains("strategy"));
    EXPECT_TRUE(row.contains("uploaded"));
    EXPECT_TRUE(row.contains("edge_accuracy"));
    EXPECT_TRUE(row.contains("unseen_share"));
  }
  EXPECT_EQ(j["rows"][3]["strategy"], "lowest_margin");
  EXPECT_EQ(j["rows"][3]["uploaded"], 40);
  EXPECT_EQ(j["post_shift"], 400);
}

TEST(SelectionStudy, SameSeedSameRows) {
  auto params = quick_params({30});
  params.strategies = {"random", "margin_diversity"};
  params.seed = 5;
  auto a = run(params);
  auto b = run(params);
  ASSERT_EQ(a.rows.size(), 2u);
  ASSERT_EQ(b.rows.size(), 2u);
  for (size_t i = 0; i < a.rows.size(); ++i) {
    EXPECT_EQ(a.rows[i].unseen_share, b.rows[i].unseen_share);
    EXPECT_EQ(a.rows[i].edge_accuracy, b.rows[i].edge_accuracy);
  }
}

// Retraining is what lifts the seen-only student once uploads bring the new classes: the
// retrained student beats both the initial student and a retraining on the pre-shift set alone.
TEST(SelectionStudy, UploadsOfUnseenClassesImproveTheEdgeModel) {
  auto params = quick_params({0, 120});
  params.strategies = {"random"};
  params.distill.epochs = 4;
  auto study = run(params);
  ASSERT_EQ(study.rows.size(), 2u);
  const auto& none = study.rows[0];
  const auto& some = study.rows[1];
  EXPECT_EQ(none.uploaded, 0u);
  EXPECT_EQ(none.unseen_share, 0.0);
  EXPECT_EQ(some.uploaded, 120u);
  EXPECT_GT(some.unseen_share, 0.2);  // 40 % of the stream is unseen
  ASSERT_EQ(some.uploads_per_label.size(), 10u);
  double total = 0;
  for (double c : some.uploads_per_label) total += c;
  EXPECT_EQ(total, 120.0);
  EXPECT_GT(some.edge_accuracy, study.initial_accuracy + 0.05);
  EXPECT_GT(some.edge_accuracy, none.edge_accuracy + 0.05);
}

// The label oracle's rows take only unseen-class samples; the jobs' recipe (imitation only,
// synthetic outliers, class-balanced draws) retrains as well.
TEST(SelectionStudy, LabelOracleUploadsOnlyUnseenClassesWithTheJobsRecipe) {
  auto params = quick_params({60});
  params.strategies = {"random", kLabelOracle};
  params.distill.lambda = 0.0;
  params.distill.balance = 0.5;
  params.outliers = 0.5;
  auto study = run(params);
  ASSERT_EQ(study.rows.size(), 2u);
  EXPECT_EQ(study.rows[1].strategy, "label_oracle");
  EXPECT_EQ(study.rows[1].uploaded, 60u);
  EXPECT_DOUBLE_EQ(study.rows[1].unseen_share, 1.0);
  EXPECT_LT(study.rows[0].unseen_share, 0.8);
  for (int label = 0; label < 10; ++label) {
    const bool unseen = std::count(study_data().unseen.begin(), study_data().unseen.end(), label) > 0;
    if (!unseen) EXPECT_EQ(study.rows[1].uploads_per_label[static_cast<size_t>(label)], 0.0) << label;
  }
  EXPECT_GT(study.rows[1].edge_accuracy, study.initial_accuracy);
}

// margin_diversity's options: rounds keep the budget; without audits it is deterministic (one
// repeat), and each option changes what it picks.
TEST(SelectionStudy, MarginDiversityOptionsKeepTheBudget) {
  auto params = quick_params({30});
  params.strategies = {"margin_diversity"};
  params.random_repeats = 2;
  params.rounds = 2;
  auto rounds = run(params);
  ASSERT_EQ(rounds.rows.size(), 1u);
  EXPECT_EQ(rounds.rows[0].repeats, 2u);
  params.rounds = 1;
  params.audit_share = 0.0;
  params.novelty_quotas = false;
  params.diversity_from_uploaded = false;
  auto plain = run(params);
  EXPECT_EQ(plain.rows[0].repeats, 1u);
  params.diversity_from_uploaded = true;
  auto from_uploaded = run(params);
  for (const auto* study : {&rounds, &plain, &from_uploaded}) {
    double total = 0;
    for (double c : study->rows[0].uploads_per_label) total += c;
    EXPECT_EQ(total, 30.0);
  }
  EXPECT_NE(plain.rows[0].uploads_per_label, from_uploaded.rows[0].uploads_per_label);
}

// The audit share draws from the stream by the seed; without it the margins decide alone.
TEST(SelectionStudy, AuditsDependOnTheSeed) {
  auto params = quick_params({60});
  params.strategies = {"margin_diversity"};
  params.distill.epochs = 1;
  auto first = run(params);
  params.seed = 2;
  auto second = run(params);
  EXPECT_NE(first.rows[0].uploads_per_label, second.rows[0].uploads_per_label);
  params.audit_share = 0.0;
  auto third = run(params);
  params.seed = 1;
  auto fourth = run(params);
  EXPECT_EQ(third.rows[0].uploads_per_label, fourth.rows[0].uploads_per_label);
}

TEST(NoveltyQuotas, BudgetGoesWhereTheStreamGainedOverTheHistory) {
  // History: six classes evenly. Stream: class 5 holds half of it, the others 10 % each, so the
  // known part of the stream is 0.6 of the history's mix and all novel mass sits under class 5.
  std::vector<int> history, stream;
  for (int c = 0; c < 6; ++c) history.insert(history.end(), 10, c);
  for (int c = 0; c < 5; ++c) stream.insert(stream.end(), 6, c);
  stream.insert(stream.end(), 30, 5);
  EXPECT_EQ(novelty_quotas(history, stream, 6, 10), (std::vector<size_t>{0, 0, 0, 0, 0, 10}));
  // Two classes gain: novel mass 0.2 under class 0 and 0.5 under class 2 (known = 0.3 / (1/3)).
  history = {0, 1, 2};
  stream.clear();
  stream.insert(stream.end(), 3, 0);
  stream.insert(stream.end(), 1, 1);
  stream.insert(stream.end(), 6, 2);
  EXPECT_EQ(novelty_quotas(history, stream, 3, 7), (std::vector<size_t>{2, 0, 5}));
  // No class gained: an even split, remainders to the lower classes.
  EXPECT_EQ(novelty_quotas(history, history, 3, 4), (std::vector<size_t>{2, 1, 1}));
  EXPECT_THROW(novelty_quotas(history, {0, 3}, 3, 4), Error);
}

TEST(SelectionStudy, RejectsBadInputs) {
  const auto& d = study_data();
  const auto& student = edgefm::testing::small_models().seen_student;
  auto call = [&](const SelectionStudyParams& params, const models::FoundationModel& fm,
                  const data::Dataset& post) {
    run_selection_study(fm, student, d.pre_shift, post, d.evaluation, d.unseen, params);
  };
  EXPECT_THROW(call(quick_params({}), fixture_fm(), d.post_shift), Error);
  EXPECT_THROW(call(quick_params({401}), fixture_fm(), d.post_shift), Error);
  auto unknown = quick_params({10});
  unknown.strategies = {"random", "most_confident"};
  EXPECT_THROW(call(unknown, fixture_fm(), d.post_shift), Error);
  auto no_rounds = quick_params({10});
  no_rounds.rounds = 0;
  EXPECT_THROW(call(no_rounds, fixture_fm(), d.post_shift), Error);
  auto bad_audit = quick_params({10});
  bad_audit.audit_share = 1.5;
  EXPECT_THROW(call(bad_audit, fixture_fm(), d.post_shift), Error);
  auto bad_outliers = quick_params({10});
  bad_outliers.outliers = -1;
  EXPECT_THROW(call(bad_outliers, fixture_fm(), d.post_shift), Error);
  auto no_repeats = quick_params({10});
  no_repeats.random_repeats = 0;
  EXPECT_THROW(call(no_repeats, fixture_fm(), d.post_shift), Error);
  auto fitted = quick_params({10});
  fitted.rank_score = "knn";
  EXPECT_THROW(call(fitted, fixture_fm(), d.post_shift), Error);
  auto unknown_score = quick_params({10});
  unknown_score.rank_score = "loudness";
  EXPECT_THROW(call(unknown_score, fixture_fm(), d.post_shift), Error);

  // An FM whose pool has another dimension than the student's.
  models::FoundationModel other = fixture_fm();
  other.pool = models::TextPool(4);
  other.pool.set("shirt", {1, 0, 0, 0});
  try {
    call(quick_params({10}), other, d.post_shift);
    ADD_FAILURE() << "a student of another dimension was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dimension"), std::string::npos) << e.what();
  }

  // Images of another size than the FM takes.
  data::Dataset small = d.post_shift.subset({0, 1, 2});
  small.spec.shape = {1, 14, 14};
  small.samples.resize(3 * 14 * 14);
  EXPECT_THROW(call(quick_params({2}), fixture_fm(), small), Error);
}

}  // namespace
}  // namespace edgefm::customize
