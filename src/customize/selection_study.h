#pragma once
// The selection comparison of the open-set scenario: after the unseen classes appear,
// the edge uploads a budget of post-shift samples chosen by a strategy, the cloud retrains its
// student on them plus the device's earlier (pre-shift) uploads, and the new student's accuracy
// is measured. One row per strategy and budget: accuracy of the resulting edge model against
// the number of samples uploaded, at the same budget for every strategy.
//
// What each side sees, as in the live loop:
//   edge   ranks the post-shift stream with its CURRENT student (seen classes only): the
//          routing score stored in the student's meta (the margin when none) over the
//          student's own pool, and the student's embeddings for k-center diversity;
//   cloud  embeds and pseudo-labels the pre-shift set and the uploads with the FM and distills
//          a new student against the FM's whole pool, warm-started from the current student.
// True labels are never read for selection or training; only the evaluation and the reported
// unseen share of the uploads read them. Torch-free.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/json_io.h"
#include "customize/distill.h"
#include "customize/select.h"
#include "data/dataset.h"
#include "models/foundation.h"

namespace edgefm::customize {

// Not a strategy an edge could run: a reference that draws its uploads uniformly from the
// post-shift samples whose TRUE label is an unseen class (the most any selection could find of
// the new classes), seeded like random and retrained the same way. Listed in `strategies`, it
// gives rows that show how much room selection has at each budget.
inline constexpr const char* kLabelOracle = "label_oracle";

struct SelectionStudyParams {
  // Selection strategies (select.h), and kLabelOracle for the reference rows.
  std::vector<std::string> strategies = {"random", "lowest_margin", "margin_diversity"};
  // Upload counts to compare (e.g. 1 %, 2 %, 5 % of the post-shift stream). 0 is allowed: the
  // retraining on the pre-shift set alone, computed once and reported for every strategy.
  std::vector<size_t> budgets;
  size_t random_repeats = 2;  // seeded selections averaged over this many seeds (>= 1)
  // Epochs etc. of each retraining. The study sets warm_start (the initial student) and arch
  // (the initial student's architecture, which a warm start needs).
  DistillParams distill = distill_default_params();
  // Synthetic outliers per training image in each retraining, as the service's jobs add them
  // (customize/job.h add_synthetic_outliers; 0: none).
  double outliers = 0.0;
  SelectionParams selection;  // candidate_factor of margin_diversity
  // The edge's ranking score: empty = the routing score in the student's meta (the margin when
  // the meta has none); otherwise a route::score_names() name that needs no fit ("margin").
  std::string rank_score;
  // How margin_diversity (the edge's full strategy) uses what the edge knows beyond the
  // margins; lowest_margin stays plain (select_for_upload with the initial student), random too.
  // Defaults: the combination measured best on the default split (docs in the study's report).
  //
  // k-center greedy also keeps away from the student's embeddings of the pre-shift uploads (the
  // edge's record of what it has already sent), so the picks go where the cloud has no data.
  bool diversity_from_uploaded = true;
  // The budget is split across the classes the edge predicts by novelty_quotas (below) of the
  // pre-shift uploads against the stream: where novel samples hide under a seen class's name.
  bool novelty_quotas = true;
  // Share of each pick (with novelty_quotas: of each predicted class's quota) drawn uniformly
  // from the samples the margins left: the audit of confident samples, since a score can be
  // confidently wrong on a class the edge never saw (as the edge's audits do). With a share
  // above 0 the selection is seeded, so margin_diversity is averaged over random_repeats too.
  double audit_share = 0.5;
  // Upload rounds, as the live loop runs them: round r uploads its share of the budget ranked
  // by the student of round r - 1 (round 1: the initial student over its own pool; later: a
  // student retrained on pre-shift + the uploads so far with a third of the epochs, over the
  // FM's pool), k-center also keeping away from the uploads so far. The final student is
  // trained like every other row's: from the initial student on pre-shift + all uploads.
  int rounds = 1;
  uint64_t seed = 1;
};
SelectionStudyParams selection_study_default_params();

struct SelectionRow {
  std::string strategy;
  size_t uploaded = 0;
  double edge_accuracy = 0;  // mean over the repeats (random) on the evaluation set
  double edge_accuracy_stdev = 0;  // over the repeats (0 for one)
  // Share of uploads whose TRUE label is an unseen class (reported only; labels are never used
  // for selection or training). Mean over the repeats.
  double unseen_share = 0;
  // Uploads per TRUE label of the post-shift set (reported only), mean over the repeats.
  std::vector<double> uploads_per_label;
  size_t repeats = 1;
  double seconds = 0;  // wall time of one retraining + evaluation, mean over the repeats
  json to_json() const;  // every field above, by the same names
};

struct SelectionStudy {
  // The initial (seen-only) student on the evaluation set, against the FM's whole pool (the
  // pool every retrained student is measured against) and against its own seen-class pool.
  double initial_accuracy = 0;
  double initial_own_pool_accuracy = 0;
  double fm_accuracy = 0;  // the FM on the evaluation set
  std::string rank_score;  // the score the edge ranked by
  size_t pre_shift = 0, post_shift = 0, evaluation = 0;
  std::vector<SelectionRow> rows;  // strategies in the order given, budgets ascending
  double seconds = 0;
  json to_json() const;  // the fields above, rows as an array of SelectionRow::to_json
};

// Open-set label shift, from predictions alone: the edge predicts classes on its history
// (what it uploaded before) and on the stream. Assuming the known classes keep their relative
// frequencies, the stream holds `known` = min_c stream_c / history_c of the history's mix; each
// predicted class's share beyond known * history_c is novel mass hiding under that name.
// Returns `budget` split across the classes in proportion to it (largest remainder; evenly
// when no class gained). Predictions in [0, classes); throws Error otherwise.
std::vector<size_t> novelty_quotas(const std::vector<int>& history_predictions,
                                   const std::vector<int>& stream_predictions, int classes,
                                   size_t budget);

// `initial_student`: the edge's current student artifact (seen classes only);
// `pre_shift`: the device's earlier uploads the cloud still holds (labels unused);
// `post_shift`: the stream after the shift, where uploads are selected from (labels only for
// the reported unseen share); `evaluation`: labelled images of all classes; `unseen_labels`:
// the evaluation/post-shift label indices of the unseen classes. Throws Error on an empty
// budget list, a budget larger than the stream, an unknown strategy or rank score, zero
// repeats, an empty evaluation set, images of another size than the FM takes, or a student
// whose embedding dimension differs from the FM's. `progress` receives one line per row.
SelectionStudy run_selection_study(const models::FoundationModel& fm,
                                   const std::string& initial_student,
                                   const data::Dataset& pre_shift, const data::Dataset& post_shift,
                                   const data::Dataset& evaluation,
                                   const std::vector<int>& unseen_labels,
                                   const SelectionStudyParams& params,
                                   const std::function<void(const std::string&)>& progress = {});

}  // namespace edgefm::customize
