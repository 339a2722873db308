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
    EXPECT_EQ(row.repeats, row.strategy == "random" ? 2u : 1u);
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

// The edge's uncertainty finds the new classes, and retraining on them is what lifts the
// student: uploads chosen by lowest margin are mostly unseen-class images, and the retrained
// student beats both the seen-only student and a retraining on the pre-shift set alone.
TEST(SelectionStudy, UploadsOfUnseenClassesImproveTheEdgeModel) {
  auto params = quick_params({0, 80});
  params.strategies = {"lowest_margin"};
  params.distill.epochs = 4;
  auto study = run(params);
  ASSERT_EQ(study.rows.size(), 2u);
  const auto& none = study.rows[0];
  const auto& some = study.rows[1];
  EXPECT_EQ(none.uploaded, 0u);
  EXPECT_EQ(none.unseen_share, 0.0);
  EXPECT_EQ(some.uploaded, 80u);
  // 40 % of the stream is unseen; the lowest margins pick more of it than that.
  EXPECT_GT(some.unseen_share, 0.5);
  EXPECT_GT(some.edge_accuracy, study.initial_accuracy + 0.05);
  EXPECT_GT(some.edge_accuracy, none.edge_accuracy + 0.05);
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
  small.rows = small.cols = 14;
  small.pixels.resize(3 * 14 * 14);
  EXPECT_THROW(call(quick_params({2}), fixture_fm(), small), Error);
}

}  // namespace
}  // namespace edgefm::customize
