#include "customize/selection_study.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
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

void check_images(const data::Dataset& set, const char* what, const data::SampleSpec& spec) {
  if (set.size() == 0) return;
  data::check_same_spec(spec, "the FM", set.spec, std::string("the selection study's ") + what + " samples");
}

void validate(const SelectionStudyParams& params, const data::Dataset& post_shift,
              const data::Dataset& pre_shift, const data::Dataset& evaluation) {
  if (params.budgets.empty()) {
    fail_expected("selection study budgets", "at least one upload count", "none");
  }
  if (params.strategies.empty()) {
    fail_expected("selection study strategies", "at least one strategy", "none");
  }
  for (const auto& name : params.strategies) {
    if (name != kLabelOracle) parse_selection_strategy(name);
  }
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
  if (!(params.outliers >= 0.0 && params.outliers <= 10.0)) {
    fail_expected("selection study outliers", "a share in [0, 10]", std::to_string(params.outliers));
  }
  if (!(params.audit_share >= 0.0 && params.audit_share <= 1.0)) {
    fail_expected("selection study audit share", "a share in [0, 1]", std::to_string(params.audit_share));
  }
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

// margin_diversity's picks among n rows (scores n, embeddings n x d): round((1 - audit_share) *
// budget) by select_for_upload's margin_diversity, except that with `centers` (num x d) k-center
// greedy also keeps away from them (over the same lowest-score candidates, candidate_factor per
// pick); the rest drawn uniformly from the rows not picked (the audit).
std::vector<size_t> pick_rows(std::span<const float> scores, const float* embeddings, int d,
                              size_t budget, uint64_t seed, const std::vector<float>& centers,
                              const SelectionParams& params, double audit_share) {
  const size_t n = scores.size();
  budget = std::min(budget, n);
  const auto audits = static_cast<size_t>(std::lround(audit_share * static_cast<double>(budget)));
  const size_t ranked = budget - audits;
  std::vector<size_t> picked;
  if (centers.empty()) {
    picked = select_for_upload(SelectionStrategy::margin_diversity, scores, embeddings, d, ranked,
                               seed, params);
  } else {
    auto order = select_for_upload(SelectionStrategy::lowest_margin, scores, nullptr, d, n, seed, params);
    const size_t factor = std::max<size_t>(1, params.candidate_factor);
    order.resize(std::min(n, ranked > n / factor ? n : ranked * factor));
    picked = k_center_greedy(embeddings, d, order, ranked, centers.data(),
                             centers.size() / static_cast<size_t>(d));
  }
  if (audits > 0) {
    std::vector<char> taken(n, 0);
    for (size_t i : picked) taken[i] = 1;
    std::vector<size_t> rest;
    for (size_t i = 0; i < n; ++i) {
      if (!taken[i]) rest.push_back(i);
    }
    std::vector<float> flat(rest.size(), 0.0f);
    for (size_t j : select_for_upload(SelectionStrategy::random, flat, nullptr, d, audits, seed + 7919, params)) {
      picked.push_back(rest[j]);
    }
  }
  return picked;
}

}  // namespace

std::vector<size_t> novelty_quotas(const std::vector<int>& history_predictions,
                                   const std::vector<int>& stream_predictions, int classes,
                                   size_t budget) {
  if (classes <= 0) fail_expected("novelty quotas", "at least one class", std::to_string(classes));
  std::vector<double> history(static_cast<size_t>(classes), 0.0), stream(history);
  auto count = [&](const std::vector<int>& predictions, std::vector<double>& share) {
    for (int c : predictions) {
      if (c < 0 || c >= classes) {
        fail_expected("novelty quotas", "predictions in [0, " + std::to_string(classes) + ")",
                      std::to_string(c));
      }
      share[static_cast<size_t>(c)] += 1.0 / static_cast<double>(predictions.size());
    }
  };
  count(history_predictions, history);
  count(stream_predictions, stream);
  // The largest share of the history that the stream can still hold in every class: the
  // known part of the stream; the rest of each class's share is its estimated novel mass.
  double known = 1.0;
  for (int c = 0; c < classes; ++c) {
    if (history[c] > 0) known = std::min(known, stream[c] / history[c]);
  }
  std::vector<double> novel(static_cast<size_t>(classes));
  double total = 0;
  for (int c = 0; c < classes; ++c) {
    novel[c] = std::max(0.0, stream[c] - known * history[c]);
    total += novel[c];
  }
  std::vector<size_t> quotas(static_cast<size_t>(classes), 0);
  if (budget == 0) return quotas;
  if (total <= 1e-12) {  // no class gained: the stream looks like the history; share evenly
    std::fill(novel.begin(), novel.end(), 1.0);
    total = classes;
  }
  // Largest remainder; ties go to the lower class index.
  size_t given = 0;
  std::vector<std::pair<double, int>> remainders;
  for (int c = 0; c < classes; ++c) {
    const double exact = static_cast<double>(budget) * novel[c] / total;
    quotas[c] = static_cast<size_t>(std::floor(exact));
    given += quotas[c];
    remainders.push_back({exact - std::floor(exact), c});
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t r = 0; given < budget; ++r, ++given) quotas[remainders[r % remainders.size()].second]++;
  return quotas;
}

namespace {

// margin_diversity with novelty quotas: each predicted class's quota picked by pick_rows among
// the samples predicted as that class; a quota larger than its class is filled by the lowest
// scores elsewhere.
std::vector<size_t> pick_by_quotas(const Embedded& view, std::span<const float> scores,
                                   const std::vector<int>& history_predictions, size_t budget,
                                   uint64_t seed, const std::vector<float>& centers,
                                   const SelectionStudyParams& params) {
  const auto quotas = novelty_quotas(history_predictions, view.predictions, view.classes, budget);
  const auto d = static_cast<size_t>(view.dim);
  std::vector<size_t> chosen;
  std::vector<char> taken(view.n, 0);
  for (int c = 0; c < view.classes; ++c) {
    std::vector<size_t> rows;
    for (size_t i = 0; i < view.n; ++i) {
      if (view.predictions[i] == c) rows.push_back(i);
    }
    if (rows.empty() || quotas[c] == 0) continue;
    std::vector<float> class_scores(rows.size());
    std::vector<float> class_embeddings(rows.size() * d);
    for (size_t j = 0; j < rows.size(); ++j) {
      class_scores[j] = scores[rows[j]];
      std::copy_n(view.embeddings.begin() + rows[j] * d, d, class_embeddings.begin() + j * d);
    }
    for (size_t j : pick_rows(class_scores, class_embeddings.data(), view.dim, quotas[c],
                              seed + static_cast<uint64_t>(c), centers, params.selection,
                              params.audit_share)) {
      chosen.push_back(rows[j]);
      taken[rows[j]] = 1;
    }
  }
  if (chosen.size() < budget) {
    std::vector<size_t> rest;
    for (size_t i = 0; i < view.n; ++i) {
      if (!taken[i]) rest.push_back(i);
    }
    std::vector<float> rest_scores(rest.size());
    for (size_t j = 0; j < rest.size(); ++j) rest_scores[j] = scores[rest[j]];
    for (size_t j : select_for_upload(SelectionStrategy::lowest_margin, rest_scores, nullptr,
                                      view.dim, budget - chosen.size(), seed)) {
      chosen.push_back(rest[j]);
    }
  }
  return chosen;
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
          {"uploads_per_label", uploads_per_label},
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
  check_images(pre_shift, "pre-shift", fm.spec());
  check_images(post_shift, "post-shift", fm.spec());
  check_images(evaluation, "evaluation", fm.spec());

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

  // Pre-shift uploads plus the picked post-shift ones, as the cloud holds them, plus the
  // synthetic outliers a job adds.
  auto cloud_set = [&](const std::vector<size_t>& picked) {
    DistillSet set;
    set.spec = fm.spec();
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
    if (params.outliers > 0.0 && set.size() >= 2) {
      add_synthetic_outliers(fm, static_cast<size_t>(params.outliers * static_cast<double>(set.size())),
                             distill_params.seed + 100, set);
    }
    return set;
  };

  // margin_diversity's picks, round by round (see SelectionStudyParams).
  const int rounds = params.rounds;
  const auto later_score = route::score_needs_fit(score->name()) ? route::make_score("margin")
                                                                 : route::make_score(score->name(), score->params());
  const bool needs_history =
      (params.diversity_from_uploaded || params.novelty_quotas) && pre_shift.size() > 0;
  Embedded initial_history;
  if (needs_history) {
    initial_history = embed_images(*student.encoder, student.pool, pre_images.data(), pre_shift.size());
  }
  auto select_history_aware = [&](size_t budget, uint64_t seed) {
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
        const Embedded* history = nullptr;  // the ranker's view of the pre-shift uploads
        Embedded ranker_history;
        if (!ranker) {
          view = edge_post;  // nothing is taken before round 1
          scores = initial_scores;
          if (needs_history) history = &initial_history;
        } else {
          const auto images = post_shift.to_float(remaining);
          view = embed_images(*ranker, pool, images.data(), remaining.size());
          scores = edge_scores(*later_score, view);
          if (needs_history) {
            ranker_history = embed_images(*ranker, pool, pre_images.data(), pre_shift.size());
            history = &ranker_history;
          }
        }
        std::vector<float> centers;
        if (params.diversity_from_uploaded && history) centers = history->embeddings;
        if (ranker && !picked.empty()) {
          const auto uploaded = post_shift.to_float(picked);
          const auto uploaded_view =
              models::embed_all(*ranker, uploaded.data(), static_cast<int64_t>(picked.size()));
          centers.insert(centers.end(), uploaded_view.begin(), uploaded_view.end());
        }
        const size_t round_budget = target - picked.size();
        const auto chosen =  // rows of view
            params.novelty_quotas && history
                ? pick_by_quotas(view, scores, history->predictions, round_budget, seed, centers, params)
                : pick_rows(scores, view.embeddings.data(), view.dim, round_budget, seed, centers,
                            params.selection, params.audit_share);
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
    std::vector<double> per_label;
    double seconds;
  };
  const size_t labels = std::max<size_t>(
      post_shift.class_names.size(),
      post_shift.size() ? static_cast<size_t>(*std::max_element(post_shift.labels.begin(),
                                                                post_shift.labels.end()) + 1)
                        : 0);
  auto retrain = [&](const std::vector<size_t>& picked, std::chrono::steady_clock::time_point t0) {
    auto trained = distill(cloud_set(picked), pool, distill_params);
    auto edge_eval = embed_dataset(*trained.student, pool, evaluation);
    size_t unseen_count = 0;
    Outcome out;
    out.per_label.assign(labels, 0.0);
    for (size_t i : picked) {
      unseen_count += unseen.count(post_shift.labels[i]);
      out.per_label[static_cast<size_t>(post_shift.labels[i])] += 1.0;
    }
    out.accuracy = fraction_correct(correct_predictions(edge_eval, eval_to_label, evaluation.labels));
    out.unseen_share = picked.empty() ? 0.0 : static_cast<double>(unseen_count) / picked.size();
    out.seconds = seconds_since(t0);
    return out;
  };

  std::vector<size_t> budgets = params.budgets;
  std::sort(budgets.begin(), budgets.end());
  budgets.erase(std::unique(budgets.begin(), budgets.end()), budgets.end());
  std::optional<Outcome> no_uploads;  // budget 0: the same retraining for every strategy

  // The label oracle's pool: the post-shift samples of unseen classes.
  std::vector<size_t> unseen_rows;
  for (size_t i = 0; i < post_shift.size(); ++i) {
    if (unseen.count(post_shift.labels[i])) unseen_rows.push_back(i);
  }
  auto oracle_picks = [&](size_t budget, uint64_t seed) {
    const std::vector<float> flat(unseen_rows.size(), 0.0f);
    std::vector<size_t> picked;
    for (size_t j : select_for_upload(SelectionStrategy::random, flat, nullptr, edge_post.dim,
                                      std::min(budget, unseen_rows.size()), seed, params.selection)) {
      picked.push_back(unseen_rows[j]);
    }
    return picked;
  };

  for (const auto& name : params.strategies) {
    const bool oracle = name == kLabelOracle;
    const auto strategy = oracle ? SelectionStrategy::random : parse_selection_strategy(name);
    for (size_t budget : budgets) {
      SelectionRow row;
      row.strategy = name;
      row.uploaded = budget;
      std::vector<double> accuracies, shares, seconds;
      std::vector<std::vector<double>> per_labels;
      const bool seeded = strategy == SelectionStrategy::random ||
                          (strategy == SelectionStrategy::margin_diversity && params.audit_share > 0);
      const size_t repeats = seeded && budget > 0 ? params.random_repeats : 1;
      for (size_t r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        Outcome outcome;
        if (budget == 0) {
          if (!no_uploads) no_uploads = retrain({}, t0);
          outcome = *no_uploads;
        } else if (oracle) {
          outcome = retrain(oracle_picks(budget, params.seed + r), t0);
        } else if (strategy == SelectionStrategy::margin_diversity) {
          outcome = retrain(select_history_aware(budget, params.seed + r), t0);
        } else {
          outcome = retrain(select_for_upload(strategy, initial_scores, edge_post.embeddings.data(),
                                              edge_post.dim, budget, params.seed + r, params.selection),
                            t0);
        }
        accuracies.push_back(outcome.accuracy);
        shares.push_back(outcome.unseen_share);
        per_labels.push_back(outcome.per_label);
        seconds.push_back(outcome.seconds);
      }
      row.repeats = repeats;
      row.edge_accuracy = mean(accuracies);
      row.edge_accuracy_stdev = stdev(accuracies);
      row.unseen_share = mean(shares);
      row.seconds = mean(seconds);
      row.uploads_per_label.assign(labels, 0.0);
      for (const auto& per_label : per_labels) {
        for (size_t l = 0; l < labels; ++l) row.uploads_per_label[l] += per_label[l] / repeats;
      }
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
