#include "customize/service_job.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>

#include "common/error.h"
#include "customize/job.h"
#include "models/edge.h"
#include "models/student.h"
#include "route/scores.h"
#include "route/similarity.h"

namespace edgefm::customize {

namespace {

const std::vector<std::string> kRequestFields = {
    "profile", "budget",      "classes",  "epochs", "table_epochs", "holdout", "batch_size",
    "learning_rate", "lambda", "temperature", "seed", "score", "score_params", "outliers",
    "balance"};

int int_in(const json& request, const std::string& name, int low, int high, int fallback) {
  if (!request.contains(name)) return fallback;
  const json& v = request[name];
  if (!v.is_number_integer() || v.get<int64_t>() < low || v.get<int64_t>() > high) {
    fail_expected("job request field '" + name + "'",
                  "an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "]",
                  v.dump());
  }
  return v.get<int>();
}

double number_in(const json& request, const std::string& name, double low, double high,
                 bool low_open, double fallback) {
  if (!request.contains(name)) return fallback;
  const json& v = request[name];
  const double x = v.is_number() ? v.get<double>() : 0;
  if (!v.is_number() || x > high || x < low || (low_open && x == low)) {
    fail_expected("job request field '" + name + "'",
                  std::string("a number in ") + (low_open ? "(" : "[") + std::to_string(low) +
                      ", " + std::to_string(high) + "]",
                  v.dump());
  }
  return x;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Agreement of the student's nearest class with the FM's pseudo-labels.
double agreement(const models::ImageEncoder& student, const models::TextPool& pool,
                 const std::vector<float>& images, const std::vector<int>& fm_labels) {
  if (fm_labels.empty()) return 0;
  auto view = embed_images(student, pool, images.data(), fm_labels.size());
  size_t same = 0;
  for (size_t i = 0; i < fm_labels.size(); ++i) same += view.predictions[i] == fm_labels[i];
  return static_cast<double>(same) / static_cast<double>(fm_labels.size());
}

}  // namespace

ServiceJobRequest ServiceJobRequest::parse(const json& request, const models::FoundationModel& fm) {
  if (!request.is_object()) fail_expected("job request", "a JSON object", request.type_name());
  for (auto it = request.begin(); it != request.end(); ++it) {
    if (std::find(kRequestFields.begin(), kRequestFields.end(), it.key()) == kRequestFields.end()) {
      fail_expected("job request field", "one of " + join(kRequestFields), "'" + it.key() + "'");
    }
  }
  ServiceJobRequest out;
  if (!request.contains("profile")) {
    throw Error("job request: missing field 'profile' (the device profile from `edgefm profile`)");
  }
  out.profile = DeviceProfile::from_json(request["profile"]);
  for (const auto& a : out.profile.architectures) {
    try {
      models::check_edge_architecture(a.arch);
    } catch (const Error& e) {
      throw Error(std::string("job request profile: ") + e.what());
    }
  }
  if (request.contains("budget")) out.budget = ResourceBudget::from_json(request["budget"]);
  // A budget no profiled architecture meets is the caller's error, answered before queueing.
  if (architectures_within(out.profile, out.budget).empty()) {
    choose_architecture({}, out.profile, out.budget);
  }
  if (request.contains("classes")) {
    const json& c = request["classes"];
    if (!c.is_array() || c.empty() ||
        !std::all_of(c.begin(), c.end(), [](const json& x) { return x.is_string(); })) {
      fail_expected("job request field 'classes'", "a non-empty array of class names", c.dump());
    }
    out.classes = c.get<std::vector<std::string>>();
    std::set<std::string> unique(out.classes.begin(), out.classes.end());
    if (unique.size() != out.classes.size()) {
      throw Error("job request field 'classes': a class is listed twice");
    }
    for (const auto& name : out.classes) {
      if (!fm.pool.index_of(name)) {
        fail_expected("job request class '" + name + "'", "a class of the FM (" + join(fm.pool.names()) + ")",
                      "an unknown name");
      }
    }
  } else {
    out.classes = fm.pool.names();
  }
  if (out.classes.size() < 2) throw Error("job request field 'classes': expected at least 2 classes");
  out.distill.epochs = int_in(request, "epochs", 1, 1000, 10);
  out.table_epochs = int_in(request, "table_epochs", 1, 1000, 2);
  out.distill.batch_size = int_in(request, "batch_size", 1, 65536, out.distill.batch_size);
  out.distill.seed = static_cast<uint64_t>(int_in(request, "seed", 0, 1 << 30, 1));
  out.holdout = number_in(request, "holdout", 0.0, 0.9, true, 0.2);
  out.distill.learning_rate = number_in(request, "learning_rate", 0.0, 10.0, true, out.distill.learning_rate);
  out.distill.lambda = number_in(request, "lambda", 0.0, 1e6, false, out.distill.lambda);
  out.distill.temperature = number_in(request, "temperature", 0.0, 100.0, true, out.distill.temperature);
  out.outliers = number_in(request, "outliers", 0.0, 10.0, false, 0.0);
  out.distill.balance = number_in(request, "balance", 0.0, 1.0, false, 0.0);
  if (request.contains("score")) {
    if (!request["score"].is_string()) {
      fail_expected("job request field 'score'", "a score name", request["score"].dump());
    }
    out.score = request["score"];
    auto names = route::score_names();
    if (std::find(names.begin(), names.end(), out.score) == names.end()) {
      fail_expected("job request field 'score'", "one of " + join(names), "'" + out.score + "'");
    }
  }
  if (request.contains("score_params")) {
    if (!request["score_params"].is_object()) {
      fail_expected("job request field 'score_params'", "a JSON object", request["score_params"].dump());
    }
    out.score_params = request["score_params"];
  }
  return out;
}

std::vector<bool> holdout_by_hash(const std::vector<std::string>& hashes, double holdout) {
  std::vector<bool> held(hashes.size(), false);
  size_t count = 0;
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (hashes[i].size() < 8) fail_expected("sample hash", "64 hex digits", "'" + hashes[i] + "'");
    const double u = static_cast<double>(std::stoul(hashes[i].substr(0, 8), nullptr, 16)) / 4294967296.0;
    held[i] = u < holdout;
    count += held[i];
  }
  if (hashes.size() >= 2 && count == 0) held.back() = true;
  if (hashes.size() >= 2 && count == hashes.size()) held.front() = false;
  return held;
}

cloud::JobValidator make_job_validator(models::FoundationModel fm) {
  return [fm = std::move(fm)](const json& request) { ServiceJobRequest::parse(request, fm); };
}

cloud::JobRunner make_job_runner(models::FoundationModel fm) {
  return [fm = std::move(fm)](const cloud::CustomizationJob& job,
                              const cloud::JobProgress& progress) -> json {
    const auto started = std::chrono::steady_clock::now();
    ServiceJobRequest request = ServiceJobRequest::parse(job.request, fm);
    const auto shape = fm.image->input_shape();
    if (shape != job.sample_shape) {
      fail_expected("uploaded samples", data::to_string(shape) + " samples (the FM's input)",
                    data::to_string(job.sample_shape));
    }
    const size_t n = job.sample_count();
    if (n < 2) fail_expected("customization job", "at least 2 uploaded samples", std::to_string(n));
    const auto pool = fm.pool.subset(request.classes);

    // The FM's view of every upload, then the split by content hash.
    progress(0.02, "embedding " + std::to_string(n) + " uploads with the FM");
    const std::vector<float> images = data::to_unit_floats(job.samples.data(), job.samples.size());
    auto fm_embeddings = models::embed_all(*fm.image, images.data(), static_cast<int64_t>(n));
    auto labels = pseudo_label(fm_embeddings, pool);
    const auto held = holdout_by_hash(job.sample_hashes, request.holdout);
    const size_t numel = static_cast<size_t>(shape.numel());
    const int dim = fm.image->embedding_dim();
    DistillSet train;
    train.spec = fm.spec();
    std::vector<float> held_images;
    std::vector<int> held_labels;
    for (size_t i = 0; i < n; ++i) {
      const float* image = images.data() + i * numel;
      if (held[i]) {
        held_images.insert(held_images.end(), image, image + numel);
        held_labels.push_back(labels[i]);
      } else {
        train.images.insert(train.images.end(), image, image + numel);
        const float* e = fm_embeddings.data() + i * static_cast<size_t>(dim);
        train.fm_embeddings.insert(train.fm_embeddings.end(), e, e + dim);
        train.pseudo_labels.push_back(labels[i]);
      }
    }

    // What the student learns from: the uploads, plus synthetic outliers that it imitates with
    // the MSE term only (the score below is fitted on the uploads alone).
    DistillSet with_outliers;  // a copy of `train` only when there are outliers to add
    if (request.outliers > 0.0 && train.size() >= 2) {
      const size_t count = static_cast<size_t>(request.outliers * static_cast<double>(train.size()));
      progress(0.04, "embedding " + std::to_string(count) + " synthetic outliers with the FM");
      with_outliers = train;
      add_synthetic_outliers(fm, count, request.distill.seed + 100, with_outliers);
    }
    const DistillSet& learn = with_outliers.size() > 0 ? with_outliers : train;

    // The previous artifact is a warm start only for its own architecture.
    std::string previous_arch;
    if (job.previous) previous_arch = job.previous->value("arch", "");
    auto warm_start_for = [&](const std::string& arch) {
      return !job.previous_artifact.empty() && arch == previous_arch ? job.previous_artifact.string()
                                                                       : std::string();
    };

    // The lookup table: accuracy of each architecture that fits, after a brief distillation.
    auto candidates = architectures_within(request.profile, request.budget);
    if (candidates.empty()) choose_architecture({}, request.profile, request.budget);  // throws
    std::map<std::string, double> accuracy;
    std::map<std::string, DistillResult> briefly_trained;
    if (candidates.size() > 1) {
      for (size_t c = 0; c < candidates.size(); ++c) {
        const std::string& arch = candidates[c];
        const double from = 0.05 + 0.4 * static_cast<double>(c) / static_cast<double>(candidates.size());
        const double span = 0.4 / static_cast<double>(candidates.size());
        progress(from, "lookup table: distilling " + arch + " briefly");
        DistillParams p = request.distill;
        p.arch = arch;
        p.epochs = request.table_epochs;
        p.warm_start = warm_start_for(arch);
        p.on_step = [&, from, span](int64_t step, int64_t total) {
          progress(from + span * static_cast<double>(step) / static_cast<double>(total),
                   "lookup table: distilling " + arch + " briefly");
        };
        auto trained = distill(learn, pool, p);
        accuracy[arch] = agreement(*trained.student, pool, held_images, held_labels);
        std::fprintf(stderr, "[customization] %s: lookup table %s accuracy %.3f on %zu held out\n",
                     job.id.c_str(), arch.c_str(), accuracy[arch], held_labels.size());
      }
    } else {
      accuracy[candidates.front()] = 0;  // the only one that fits; measured after training
    }
    ArchChoice choice = choose_architecture(accuracy, request.profile, request.budget);

    // The model the device gets.
    const std::string warm_start = warm_start_for(choice.arch);
    progress(0.5, "distilling " + choice.arch + (warm_start.empty() ? "" : " (warm start)"));
    DistillParams p = request.distill;
    p.arch = choice.arch;
    p.warm_start = warm_start;
    p.on_step = [&](int64_t step, int64_t total) {
      progress(0.5 + 0.4 * static_cast<double>(step) / static_cast<double>(total),
               "distilling " + choice.arch + (warm_start.empty() ? "" : " (warm start)"));
    };
    DistillResult trained = distill(learn, pool, p);
    const auto& student = *trained.student;

    progress(0.92, "score and calibration profile");
    auto student_train = embed_images(student, pool, train.images.data(), train.size());
    auto score = route::fit_score(request.score, request.score_params, student_train.embeddings.data(),
                                  train.pseudo_labels.data(), train.size(), pool.dim(),
                                  static_cast<int>(pool.size()), student_train.similarities.data());
    auto edge_held = embed_images(student, pool, held_images.data(), held_labels.size());
    auto fm_held = embed_images(*fm.image, pool, held_images.data(), held_labels.size());
    std::vector<int> identity(pool.size());
    std::iota(identity.begin(), identity.end(), 0);
    auto calibration = calibrate(edge_held, fm_held, identity, identity, held_labels, *score);
    const double held_accuracy = agreement(student, pool, held_images, held_labels);
    for (auto& row : choice.table) {
      if (row.arch == choice.arch) row.accuracy = held_accuracy;
    }
    choice.accuracy = held_accuracy;

    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    json summary = {{"arch", choice.arch},
                    {"holdout_accuracy", held_accuracy},
                    {"lookup_table", choice.to_json()},
                    {"budget", request.budget.to_json()},
                    {"profile_device", request.profile.device},
                    {"warm_start", !warm_start.empty()},
                    {"uploaded", n},
                    {"train_samples", train.size()},
                    {"outliers", learn.size() - train.size()},
                    {"holdout_samples", held_labels.size()},
                    {"epochs", request.distill.epochs},
                    {"table_epochs", request.table_epochs},
                    {"balance", request.distill.balance},
                    {"seconds", seconds}};
    json meta = {{"version", job.version},
                 {"score", route::score_to_json(*score)},
                 {"calibration", calibration.to_json()},
                 {"t_edge_ms", request.profile.find(choice.arch)->latency_ms},
                 {"fm_version", fm.version},
                 {"classes", request.classes},
                 {"device", job.device},
                 {"job", job.id},
                 {"calibration_labels", "fm"},
                 {"distill", trained.summary},
                 {"customize", summary}};
    progress(0.97, "writing the artifact");
    models::save_student(job.output, student, pool, meta);
    return summary;
  };
}

}  // namespace edgefm::customize
