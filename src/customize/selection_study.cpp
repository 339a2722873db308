#include "customize/selection_study.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <unordered_set>

#include "common/error.h"
#include "customize/job.h"
#include "models/encoder.h"
#include "models/student.h"
#include "route/scores.h"

namespace edgefm::customize {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void check_images(const data::Dataset& set, const char* what, const models::ImageShape& shape) {
  if (set.size() == 0) return;
  if (set.rows != shape.height || set.cols != shape.width || shape.channels != 1) {
    fail_expected(std::string("selection study: ") + what + " images",
                  std::to_string(shape.channels) + " x " + std::to_string(shape.height) + " x " +
                      std::to_string(shape.width) + " (the FM's input)",
                  "1 x " + std::to_string(set.rows) + " x " + std::to_string(set.cols));
  }
}

void validate(const SelectionStudyParams& params, const data::Dataset& post_shift,
              const data::Dataset& pre_shift, const data::Dataset& evaluation) {
  if (params.budgets.empty()) {
    fail_expected("selection study budgets", "at least one upload count", "none");
  }
  if (params.strategies.empty()) {
    fail_expected("selection study strategies", "at least one strategy", "none");
  }
  for (const auto& name : params.strategies) parse_selection_strategy(name);
  for (size_t budget : params.budgets) {
    if (budget > post_shift.size()) {
      fail_expected("selection study budget", "at most the " + std::to_string(post_shift.size()) +
                                                  " samples of the post-shift stream",
                    std::to_string(budget));
    }
    if (budget == 0 && pre_shift.size() == 0) {
      fail_expected("selection study budget 0", "pre-shift uploads to retrain on", "none");
    }
  }
  if (params.random_repeats == 0) fail_expected("selection study random repeats", "at least 1", "0");
  if (params.rounds < 1) {
    fail_expected("selection study rounds", "at least 1", std::to_string(params.rounds));
  }
  if (evaluation.size() == 0) fail_expected("selection study evaluation set", "labelled images", "none");
}

// Scores from the edge's side: the student's similarities to its own pool.
std::vector<float> edge_scores(const route::ConfidenceScore& score, const Embedded& edge) {
  std::vector<float> scores(edge.n);
  score.score_batch(edge.similarities.data(), edge.n, edge.classes, edge.embeddings.data(),
                    edge.dim, scores.data());
  return scores;
}

// The lowest-score candidates (candidate_factor per budgeted sample), then k-center greedy that
// also keeps away from `centers`: the same candidates as select_for_upload's margin_diversity.
std::vector<size_t> diverse_from(std::span<const float> scores, const Embedded& edge,
                                 const std::vector<float>& centers, size_t budget,
                                 const SelectionParams& params) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  auto key = [&](size_t i) {
    return std::isnan(scores[i]) ? std::numeric_limits<float>::infinity() : scores[i];
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  const size_t factor = std::max<size_t>(1, params.candidate_factor);
  order.resize(std::min(n, budget > n / factor ? n : budget * factor));
  return k_center_greedy(edge.embeddings.data(), edge.dim, order, budget, centers.data(),
                         centers.size() / static_cast<size_t>(edge.dim));
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double stdev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double sum = 0;
  for (double x : v) sum += (x - m) * (x - m);
  return std::sqrt(sum / static_cast<double>(v.size() - 1));
}

}  // namespace

SelectionStudyParams selection_study_default_params() { return SelectionStudyParams{}; }

json SelectionRow::to_json() const {
  return {{"strategy", strategy},
          {"uploaded", uploaded},
          {"edge_accuracy", edge_accuracy},
          {"edge_accuracy_stdev", edge_accuracy_stdev},
          {"unseen_share", unseen_share},
          {"repeats", repeats},
          {"seconds", seconds}};
}

json SelectionStudy::to_json() const {
  json rows_json = json::array();
  for (const auto& row : rows) rows_json.push_back(row.to_json());
  return {{"initial_accuracy", initial_accuracy},
          {"initial_own_pool_accuracy", initial_own_pool_accuracy},
          {"fm_accuracy", fm_accuracy},
          {"rank_score", rank_score},
          {"pre_shift", pre_shift},
          {"post_shift", post_shift},
          {"evaluation", evaluation},
          {"seconds", seconds},
          {"rows", rows_json}};
}

SelectionStudy run_selection_study(const models::FoundationModel& fm,
                                   const std::string& initial_student,
                                   const data::Dataset& pre_shift, const data::Dataset& post_shift,
                                   const data::Dataset& evaluation,
                                   const std::vector<int>& unseen_labels,
                                   const SelectionStudyParams& params,
                                   const std::function<void(const std::string&)>& progress) {
  const auto started = std::chrono::steady_clock::now();
  validate(params, post_shift, pre_shift, evaluation);
  if (!fm.image) fail_expected("selection study FM", "an image encoder", "none");
  const auto shape = fm.image->input_shape();
  check_images(pre_shift, "pre-shift", shape);
  check_images(post_shift, "post-shift", shape);
  check_images(evaluation, "evaluation", shape);

  auto student = models::load_student(initial_student);
  if (student.pool.dim() != fm.pool.dim() || student.encoder->embedding_dim() != fm.pool.dim()) {
    fail_expected("student '" + initial_student + "'",
                  "the FM's embedding dimension " + std::to_string(fm.pool.dim()),
                  "encoder " + std::to_string(student.encoder->embedding_dim()) + ", pool " +
                      std::to_string(student.pool.dim()));
  }
  std::unique_ptr<route::ConfidenceScore> score;
  if (!params.rank_score.empty()) {
    if (route::score_needs_fit(params.rank_score)) {
      fail_expected("selection study rank score", "a score that needs no fit (e.g. margin)",
                    "'" + params.rank_score + "'");
    }
    score = route::make_score(params.rank_score);
  } else if (student.meta.is_object() && student.meta.contains("score")) {
    score = route::score_from_json(student.meta.at("score"), "student '" + initial_student + "' meta 'score'");
  } else {
    score = route::make_score("margin");
  }
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };

  const models::TextPool& pool = fm.pool;
  SelectionStudy study;
  study.rank_score = score->name();
  study.pre_shift = pre_shift.size();
  study.post_shift = post_shift.size();
  study.evaluation = evaluation.size();

  // Evaluation references: the FM and the initial student.
  const auto eval_to_label = pool_to_label(pool, evaluation);
  study.fm_accuracy = fraction_correct(
      correct_predictions(embed_dataset(*fm.image, pool, evaluation), eval_to_label, evaluation.labels));
  study.initial_accuracy = fraction_correct(correct_predictions(
      embed_dataset(*student.encoder, pool, evaluation), eval_to_label, evaluation.labels));
  study.initial_own_pool_accuracy = fraction_correct(
      correct_predictions(embed_dataset(*student.encoder, student.pool, evaluation),
                          pool_to_label(student.pool, evaluation), evaluation.labels));
  say("initial student " + std::to_string(100 * study.initial_accuracy) + " % (own pool " +
      std::to_string(100 * study.initial_own_pool_accuracy) + " %), FM " +
      std::to_string(100 * study.fm_accuracy) + " %");

  // The edge's view of the post-shift stream (and of what it uploaded before the shift).
  const auto edge_post = embed_dataset(*student.encoder, student.pool, post_shift);
  const auto initial_scores = edge_scores(*score, edge_post);
  const auto pre_images = pre_shift.to_float();

  // The cloud's view: FM embeddings and pseudo-labels. Embedding the whole stream once is the
  // same arithmetic as embedding each selection's uploads; only selected rows are used.
  const auto fm_pre = embed_dataset(*fm.image, pool, pre_shift);
  const auto fm_post = embed_dataset(*fm.image, pool, post_shift);
  const auto pre_labels = pseudo_label(fm_pre.embeddings, pool);
  const auto post_labels = pseudo_label(fm_post.embeddings, pool);
  const auto dim = static_cast<size_t>(pool.dim());
  const std::unordered_set<int> unseen(unseen_labels.begin(), unseen_labels.end());

  auto distill_params = params.distill;
  distill_params.warm_start = initial_student;
  distill_params.arch = student.encoder->arch();

  // Pre-shift uploads plus the picked post-shift ones, as the cloud holds them.
  auto cloud_set = [&](const std::vector<size_t>& picked) {
    DistillSet set;
    set.images = pre_images;
    set.fm_embeddings = fm_pre.embeddings;
    set.pseudo_labels = pre_labels;
    const auto images = post_shift.to_float(picked);
    set.images.insert(set.images.end(), images.begin(), images.end());
    for (size_t i : picked) {
      set.fm_embeddings.insert(set.fm_embeddings.end(), fm_post.embeddings.begin() + i * dim,
                               fm_post.embeddings.begin() + (i + 1) * dim);
      set.pseudo_labels.push_back(post_labels[i]);
    }
    return set;
  };

  // Picks of an uncertainty strategy, round by round (see SelectionStudyParams::rounds).
  const int rounds = params.rounds;
  const auto later_score = route::score_needs_fit(score->name()) ? route::make_score("margin")
                                                                 : route::make_score(score->name(), score->params());
  auto select_uncertain = [&](SelectionStrategy strategy, size_t budget, uint64_t seed) {
    std::vector<size_t> picked;
    std::vector<char> taken(post_shift.size(), 0);
    std::shared_ptr<const models::ImageEncoder> ranker;  // null: the initial student
    for (int round = 1; round <= rounds; ++round) {
      const size_t target = budget * static_cast<size_t>(round) / static_cast<size_t>(rounds);
      if (target > picked.size()) {
        std::vector<size_t> remaining;
        for (size_t i = 0; i < post_shift.size(); ++i) {
          if (!taken[i]) remaining.push_back(i);
        }
        Embedded view;
        std::vector<float> scores;
        std::vector<float> centers;
        if (!ranker) {
          view = edge_post;  // nothing is taken before round 1
          scores = initial_scores;
          if (params.diversity_from_uploaded && pre_shift.size() > 0) {
            centers = embed_images(*student.encoder, student.pool, pre_images.data(), pre_shift.size()).embeddings;
          }
        } else {
          const auto images = post_shift.to_float(remaining);
          view = embed_images(*ranker, pool, images.data(), remaining.size());
          scores = edge_scores(*later_score, view);
          if (params.diversity_from_uploaded && pre_shift.size() > 0) {
            centers = models::embed_all(*ranker, pre_images.data(), static_cast<int64_t>(pre_shift.size()));
          }
          const auto uploaded = post_shift.to_float(picked);
          const auto uploaded_view = models::embed_all(*ranker, uploaded.data(), static_cast<int64_t>(picked.size()));
          centers.insert(centers.end(), uploaded_view.begin(), uploaded_view.end());
        }
        const size_t round_budget = target - picked.size();
        std::vector<size_t> chosen;
        if (strategy == SelectionStrategy::margin_diversity && !centers.empty()) {
          chosen = diverse_from(scores, view, centers, round_budget, params.selection);
        } else {
          chosen = select_for_upload(strategy, scores, view.embeddings.data(), view.dim, round_budget,
                                     seed, params.selection);
        }
        for (size_t c : chosen) {
          picked.push_back(remaining[c]);
          taken[remaining[c]] = 1;
        }
      }
      if (round < rounds) {
        auto round_params = distill_params;
        round_params.epochs = std::max(2, params.distill.epochs / 3);
        ranker = distill(cloud_set(picked), pool, round_params).student;
      }
    }
    return picked;
  };

  struct Outcome {
    double accuracy;
    double unseen_share;
    double seconds;
  };
  auto retrain = [&](const std::vector<size_t>& picked, std::chrono::steady_clock::time_point t0) {
    auto trained = distill(cloud_set(picked), pool, distill_params);
    auto edge_eval = embed_dataset(*trained.student, pool, evaluation);
    size_t unseen_count = 0;
    for (size_t i : picked) unseen_count += unseen.count(post_shift.labels[i]);
    Outcome out;
    out.accuracy = fraction_correct(correct_predictions(edge_eval, eval_to_label, evaluation.labels));
    out.unseen_share = picked.empty() ? 0.0 : static_cast<double>(unseen_count) / picked.size();
    out.seconds = seconds_since(t0);
    return out;
  };

  std::vector<size_t> budgets = params.budgets;
  std::sort(budgets.begin(), budgets.end());
  budgets.erase(std::unique(budgets.begin(), budgets.end()), budgets.end());
  std::optional<Outcome> no_uploads;  // budget 0: the same retraining for every strategy

  for (const auto& name : params.strategies) {
    const auto strategy = parse_selection_strategy(name);
    for (size_t budget : budgets) {
      SelectionRow row;
      row.strategy = name;
      row.uploaded = budget;
      std::vector<double> accuracies, shares, seconds;
      const size_t repeats = strategy == SelectionStrategy::random && budget > 0 ? params.random_repeats : 1;
      for (size_t r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        Outcome outcome;
        if (budget == 0) {
          if (!no_uploads) no_uploads = retrain({}, t0);
          outcome = *no_uploads;
        } else if (strategy == SelectionStrategy::random) {
          outcome = retrain(select_for_upload(strategy, initial_scores, nullptr, 0, budget,
                                              params.seed + r),
                            t0);
        } else {
          outcome = retrain(select_uncertain(strategy, budget, params.seed + r), t0);
        }
        accuracies.push_back(outcome.accuracy);
        shares.push_back(outcome.unseen_share);
        seconds.push_back(outcome.seconds);
      }
      row.repeats = repeats;
      row.edge_accuracy = mean(accuracies);
      row.edge_accuracy_stdev = stdev(accuracies);
      row.unseen_share = mean(shares);
      row.seconds = mean(seconds);
      char line[200];
      std::snprintf(line, sizeof line, "%s, %zu uploaded: edge %.2f %%, unseen share %.2f, %.1f s",
                    name.c_str(), budget, 100 * row.edge_accuracy, row.unseen_share, row.seconds);
      say(line);
      study.rows.push_back(row);
    }
  }
  study.seconds = seconds_since(started);
  return study;
}

}  // namespace edgefm::customize
