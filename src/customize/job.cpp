#include "customize/job.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <unordered_set>

#include "common/error.h"
#include "customize/select.h"
#include "models/edge.h"
#include "route/similarity.h"

namespace edgefm::customize {

Embedded embed_images(const models::ImageEncoder& encoder, const models::TextPool& pool,
                      const float* images, size_t n) {
  if (encoder.embedding_dim() != pool.dim()) {
    fail_expected("encoder '" + encoder.arch() + "' against its pool", "equal dimensions",
                  std::to_string(encoder.embedding_dim()) + " vs " + std::to_string(pool.dim()));
  }
  Embedded out;
  out.n = n;
  out.dim = pool.dim();
  out.classes = static_cast<int>(pool.size());
  out.embeddings = models::embed_all(encoder, images, static_cast<int64_t>(n));
  out.similarities.resize(n * pool.size());
  route::cosine_similarities(out.embeddings.data(), n, pool.data(), out.classes, out.dim,
                             out.similarities.data());
  out.predictions.resize(n);
  for (size_t i = 0; i < n; ++i) {
    out.predictions[i] = route::top2(out.similarities.data() + i * pool.size(), out.classes).first;
  }
  return out;
}

Embedded embed_dataset(const models::ImageEncoder& encoder, const models::TextPool& pool,
                       const data::Dataset& dataset) {
  auto images = dataset.to_float();
  return embed_images(encoder, pool, images.data(), dataset.size());
}

std::vector<int> pool_to_label(const models::TextPool& pool, const data::Dataset& dataset) {
  std::vector<int> map(pool.size(), -1);
  for (size_t c = 0; c < pool.size(); ++c) {
    auto it = std::find(dataset.class_names.begin(), dataset.class_names.end(), pool.name(c));
    if (it != dataset.class_names.end()) map[c] = static_cast<int>(it - dataset.class_names.begin());
  }
  return map;
}

std::vector<bool> correct_predictions(const Embedded& embedded, const std::vector<int>& to_label,
                                      const std::vector<int>& labels) {
  std::vector<bool> correct(embedded.n);
  for (size_t i = 0; i < embedded.n; ++i) {
    correct[i] = to_label[static_cast<size_t>(embedded.predictions[i])] == labels[i];
  }
  return correct;
}

double fraction_correct(const std::vector<bool>& correct) {
  if (correct.empty()) return 0.0;
  return static_cast<double>(std::count(correct.begin(), correct.end(), true)) /
         static_cast<double>(correct.size());
}

CustomizeParams customize_default_params() { return CustomizeParams{}; }

json CustomizeReport::to_json() const {
  return {{"artifact", artifact},
          {"arch", arch},
          {"candidates", candidates},
          {"uploaded", uploaded},
          {"budget_base", budget_base},
          {"uploaded_fraction", budget_base ? static_cast<double>(uploaded) / budget_base : 0.0},
          {"fm_queries", fm_queries},
          {"seconds", seconds},
          {"validation_edge_accuracy", validation_edge_accuracy},
          {"validation_fm_accuracy", validation_fm_accuracy}};
}

route::CalibrationProfile calibrate(const Embedded& edge, const Embedded& fm,
                                    const std::vector<int>& edge_to_label,
                                    const std::vector<int>& fm_to_label,
                                    const std::vector<int>& labels,
                                    const route::ConfidenceScore& score) {
  std::vector<float> scores(edge.n);
  score.score_batch(edge.similarities.data(), edge.n, edge.classes, edge.embeddings.data(),
                    edge.dim, scores.data());
  auto edge_correct = correct_predictions(edge, edge_to_label, labels);
  auto fm_correct = correct_predictions(fm, fm_to_label, labels);
  std::vector<route::CalibrationSample> samples(edge.n);
  for (size_t i = 0; i < edge.n; ++i) samples[i] = {scores[i], edge_correct[i], fm_correct[i]};
  return route::build_profile(samples, 200, score.name());
}

void add_synthetic_outliers(const models::FoundationModel& fm, size_t count, uint64_t seed,
                            DistillSet& set) {
  if (count == 0) return;
  auto outliers = synthesize_outliers(set.images, set.size(), set.spec.shape, count, seed);
  auto embeddings = models::embed_all(*fm.image, outliers.data(), static_cast<int64_t>(count));
  set.images.insert(set.images.end(), outliers.begin(), outliers.end());
  set.fm_embeddings.insert(set.fm_embeddings.end(), embeddings.begin(), embeddings.end());
  set.pseudo_labels.insert(set.pseudo_labels.end(), count, kNoLabel);
}

namespace {

// The FM's view of the uploaded images: embeddings and pseudo-labels against `pool`.
void add_uploads(const models::FoundationModel& fm, const models::TextPool& pool,
                 const data::Dataset& candidates, const std::vector<size_t>& picked,
                 DistillSet& set) {
  auto images = candidates.to_float(picked);
  auto embeddings = models::embed_all(*fm.image, images.data(), static_cast<int64_t>(picked.size()));
  auto labels = pseudo_label(embeddings, pool);
  set.images.insert(set.images.end(), images.begin(), images.end());
  set.fm_embeddings.insert(set.fm_embeddings.end(), embeddings.begin(), embeddings.end());
  set.pseudo_labels.insert(set.pseudo_labels.end(), labels.begin(), labels.end());
}

}  // namespace

CustomizeReport customize(const models::FoundationModel& fm, const data::Dataset& candidates,
                          const data::Dataset& validation, const std::vector<std::string>& classes,
                          const CustomizeParams& params, const std::filesystem::path& out) {
  auto started = std::chrono::steady_clock::now();
  models::check_edge_architecture(params.distill.arch);
  data::check_same_spec(fm.spec(), "the FM", candidates.spec, "the candidate samples");
  auto strategy = parse_selection_strategy(params.strategy);
  auto pool = fm.pool.subset(classes);
  const size_t budget = std::min(
      candidates.size(), UploadBudget::parse(params.budget)
                             .resolve(params.budget_base ? params.budget_base : candidates.size()));
  if (budget == 0) throw Error("customization: the upload budget " + params.budget + " selects no image");
  if (params.rounds < 1) fail_expected("customization rounds", "at least 1", std::to_string(params.rounds));
  const bool needs_model = strategy != SelectionStrategy::random;
  const int rounds = needs_model ? params.rounds : 1;
  if (needs_model && rounds == 1 && params.initial_student.empty()) {
    throw Error("customization: strategy " + params.strategy +
                " in one round needs an initial student (the edge's current model) to rank by");
  }

  std::shared_ptr<const models::ImageEncoder> current;
  if (!params.initial_student.empty()) current = models::load_student(params.initial_student).encoder;

  DistillSet set;
  set.spec = fm.spec();
  std::vector<char> uploaded(candidates.size(), 0);
  std::vector<size_t> order(candidates.size());
  std::iota(order.begin(), order.end(), size_t{0});
  DistillResult trained;
  size_t fm_queries = 0;
  std::string warm_start = params.distill.warm_start;
  for (int round = 1; round <= rounds; ++round) {
    size_t so_far = set.size();
    // Cumulative uploads after this round: the bootstrap share first, the full budget last.
    double share = rounds == 1 ? 1.0
                               : params.bootstrap_share + (1 - params.bootstrap_share) *
                                                              (round - 1) / (rounds - 1);
    size_t target = round == rounds ? budget : std::max<size_t>(1, static_cast<size_t>(budget * share));
    size_t round_budget = target > so_far ? target - so_far : 0;
    std::vector<size_t> remaining;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (!uploaded[i]) remaining.push_back(i);
    }
    std::vector<size_t> picked;
    if (!current || strategy == SelectionStrategy::random) {
      std::mt19937_64 rng(params.seed + static_cast<uint64_t>(round));
      std::shuffle(remaining.begin(), remaining.end(), rng);
      remaining.resize(std::min(round_budget, remaining.size()));
      picked = remaining;
    } else {
      // The edge ranks its own unlabeled images with its current model: no FM query here.
      auto images = candidates.to_float(remaining);
      auto edge = embed_images(*current, pool, images.data(), remaining.size());
      std::vector<float> margins(remaining.size());
      for (size_t i = 0; i < remaining.size(); ++i) {
        margins[i] = route::top2(edge.similarities.data() + i * edge.classes, edge.classes).margin();
      }
      auto chosen = select_for_upload(strategy, margins, edge.embeddings.data(), edge.dim,
                                      round_budget, params.seed + static_cast<uint64_t>(round));
      for (size_t c : chosen) picked.push_back(remaining[c]);
    }
    for (size_t i : picked) uploaded[i] = 1;
    add_uploads(fm, pool, candidates, picked, set);
    std::fprintf(stderr, "[customize] round %d/%d: %zu uploaded (%zu in all, budget %zu)\n", round,
                 rounds, picked.size(), set.size(), budget);

    // Synthetic outliers (cloud side: made from the uploads, embedded by the FM).
    DistillSet train = set;
    if (params.outlier_share > 0) {
      size_t count = static_cast<size_t>(params.outlier_share * set.size());
      add_synthetic_outliers(fm, count, params.seed + 100 + static_cast<uint64_t>(round), train);
      fm_queries += count;
    }
    auto distill_params = params.distill;
    distill_params.warm_start = warm_start;
    if (round < rounds) distill_params.epochs = std::max(2, params.distill.epochs / 3);
    trained = distill(train, pool, distill_params);
    current = trained.student;
  }

  // Routing score (fitted on the uploads, as the cloud sees them) and calibration profile.
  auto student_view = embed_images(*current, pool, set.images.data(), set.size());
  auto score = route::fit_score(params.score, params.score_params, student_view.embeddings.data(),
                                set.pseudo_labels.data(), set.size(), pool.dim(),
                                static_cast<int>(pool.size()), student_view.similarities.data());
  auto edge_val = embed_dataset(*current, pool, validation);
  auto fm_val = embed_dataset(*fm.image, pool, validation);
  auto to_label = pool_to_label(pool, validation);
  auto profile = calibrate(edge_val, fm_val, to_label, to_label, validation.labels, *score);

  CustomizeReport report;
  report.artifact = out.string();
  report.arch = params.distill.arch;
  report.candidates = candidates.size();
  report.budget_base = params.budget_base ? params.budget_base : candidates.size();
  report.uploaded = set.size();
  report.fm_queries = fm_queries + set.size() + validation.size();
  report.validation_edge_accuracy =
      fraction_correct(correct_predictions(edge_val, to_label, validation.labels));
  report.validation_fm_accuracy =
      fraction_correct(correct_predictions(fm_val, to_label, validation.labels));
  auto latency = models::measure_latency(*current, 1, 100, 10);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  json meta = {{"version", params.version},
               {"score", route::score_to_json(*score)},
               {"calibration", profile.to_json()},
               {"t_edge_ms", latency.median_ms},
               {"fm_version", fm.version},
               {"classes", classes},
               {"strategy", params.strategy},
               {"budget", params.budget},
               {"distill", trained.summary},
               {"customize", report.to_json()}};
  models::save_student(out, *current, pool, meta);
  return report;
}

}  // namespace edgefm::customize
