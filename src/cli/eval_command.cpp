// edgefm eval: offline evaluation on the test stream. FM-only, edge-only and EdgeFM at the
// searched threshold for a given L_app and an assumed network; open-set AUROC / FPR@95TPR of
// every score on students customized on seen classes only; the accuracy-offload curve.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/json_io.h"
#include "common/provenance.h"
#include "common/table.h"
#include "customize/job.h"
#include "data/split.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "models/edge.h"
#include "models/student.h"
#include "route/scores.h"
#include "route/threshold.h"

namespace edgefm::cli {
namespace {

struct EvalOptions {
  DataOptions data;
  FmOptions fm;
  std::string student = "models/student.pt";
  std::vector<std::string> open_set;  // SPLIT_JSON=STUDENT
  double l_app_ms = route::kDefaultLAppMs;
  double rtt_ms = route::kDefaultRttMs;
  double bandwidth_mbps = route::kDefaultUplinkMbps;
  double payload_bytes = 0;  // 0: the student's sample tensor plus the request's framing
  double t_cloud_ms = -1;  // <0: measured FM batch-1 latency
  size_t fit_images = 5000;
  std::string out_dir = "out/eval";
  std::string json_path;
};

struct Routed {
  double accuracy = 0;
  double offload_ratio = 0;
};

// EdgeFM on the test set: edge answer when score >= threshold, else the FM's.
Routed apply_threshold(const std::vector<float>& scores, const std::vector<bool>& edge_correct,
                       const std::vector<bool>& fm_correct, double threshold) {
  size_t correct = 0, offloaded = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    bool edge = route::route(scores[i], threshold) == route::Route::edge;
    offloaded += !edge;
    correct += edge ? edge_correct[i] : fm_correct[i];
  }
  double n = static_cast<double>(scores.size());
  return {correct / n, offloaded / n};
}

// Every score (fitting knn/proto/mahalanobis on seen-class training images as the student sees them)
// on the test set: seen-class samples are the positives.
json open_set_scores(const models::Student& student, const data::Dataset& train,
                     const data::Dataset& test, const data::Split& split, size_t fit_images,
                     const std::string& routing_score, Table& table) {
  std::vector<size_t> fit_index;
  for (size_t i = 0; i < train.size() && fit_index.size() < fit_images; ++i) {
    if (split.is_seen(train.labels[i])) fit_index.push_back(i);
  }
  auto fit_images_float = train.to_float(fit_index);
  auto fit = customize::embed_images(*student.encoder, student.pool, fit_images_float.data(),
                                     fit_index.size());
  auto embedded = customize::embed_dataset(*student.encoder, student.pool, test);
  std::vector<bool> positive(test.size());
  for (size_t i = 0; i < test.size(); ++i) positive[i] = split.is_seen(test.labels[i]);

  json scores = json::object();
  auto evaluate_on = [&](const auto& view, const route::ConfidenceScore& score,
                         const std::string& label) {
    std::vector<float> values(test.size());
    score.score_batch(view.similarities.data(), test.size(), view.classes,
                      view.embeddings.data(), view.dim, values.data());
    auto m = eval::open_set_metrics(values, positive);
    scores[label] = m.to_json();
    table.add_row({split.name, label, fmt_num(m.auroc, 4), fmt_num(m.fpr95, 4)});
  };
  auto evaluate = [&](const route::ConfidenceScore& score, const std::string& label) {
    evaluate_on(embedded, score, label);
  };
  for (const auto& name : route::score_names()) {
    auto score = route::fit_score(name, json::object(), fit.embeddings.data(), fit.predictions.data(),
                                  fit.n, fit.dim, fit.classes, fit.similarities.data());
    evaluate(*score, name);
  }
  // The routing score exactly as shipped in the artifact (fitted state included).
  auto shipped = route::score_from_json(student.meta.at("score"), "student score");
  evaluate(*shipped, "routing:" + routing_score);
  // The same score fitted the same way on an untrained student of the same architecture and
  // spec: the separation that the customization taught is the difference.
  auto untrained = models::make_edge_model(student.encoder->arch(), student.encoder->spec(),
                                           student.pool.dim());
  auto untrained_fit = customize::embed_images(*untrained, student.pool, fit_images_float.data(),
                                               fit_index.size());
  auto untrained_view = customize::embed_dataset(*untrained, student.pool, test);
  auto untrained_score = route::fit_score(
      routing_score, json::object(), untrained_fit.embeddings.data(),
      untrained_fit.predictions.data(), untrained_fit.n, untrained_fit.dim, untrained_fit.classes,
      untrained_fit.similarities.data());
  evaluate_on(untrained_view, *untrained_score, "untrained:" + routing_score);
  return scores;
}

void run_eval(const EvalOptions& o) {
  models::configure_torch_threads();
  auto description = o.data.description();
  auto test = data::load_dataset(description, data::Part::test, o.data.test_limit);
  auto fm = o.fm.load();
  auto student = models::load_student(o.student);
  data::check_same_spec(fm.spec(), "the FM", test.spec, "the test set");
  data::check_same_spec(student.encoder->spec(), "student '" + o.student + "'", test.spec,
                        "the test set");
  std::fprintf(stderr, "[eval] %zu test images; FM %s; student %s (%s)\n", test.size(),
               fm.version.c_str(), o.student.c_str(), student.encoder->arch().c_str());

  // FM-only and edge-only, each against its own pool.
  auto fm_view = customize::embed_dataset(*fm.image, fm.pool, test);
  auto fm_correct = customize::correct_predictions(
      fm_view, customize::pool_to_label(fm.pool, test), test.labels);
  auto edge_view = customize::embed_dataset(*student.encoder, student.pool, test);
  auto edge_correct = customize::correct_predictions(
      edge_view, customize::pool_to_label(student.pool, test), test.labels);
  auto fm_latency = models::measure_latency(*fm.image, 1);
  auto edge_latency = models::measure_latency(*student.encoder, 1);

  // EdgeFM: the threshold searched on the student's calibration profile (held-out data).
  auto score = route::score_from_json(student.meta.at("score"), "student '" + o.student + "' score");
  auto profile = route::CalibrationProfile::from_json(student.meta.at("calibration"),
                                                      "student '" + o.student + "' calibration");
  route::LatencyModel latency;
  latency.t_edge_ms = edge_latency.median_ms;
  latency.t_cloud_ms = o.t_cloud_ms >= 0 ? o.t_cloud_ms : fm_latency.median_ms;
  latency.rtt_ms = o.rtt_ms;
  latency.uplink_bps = o.bandwidth_mbps * 1e6;
  // What the edge sends per query: one 8-bit sample tensor and about 300 bytes of framing.
  latency.payload_bytes = o.payload_bytes > 0
                              ? o.payload_bytes
                              : static_cast<double>(student.encoder->input_shape().numel()) + 300.0;
  latency.validate();
  auto choice = route::search_threshold(profile, latency, o.l_app_ms);
  std::vector<float> scores(test.size());
  score->score_batch(edge_view.similarities.data(), test.size(), edge_view.classes,
                     edge_view.embeddings.data(), edge_view.dim, scores.data());
  auto routed = apply_threshold(scores, edge_correct, fm_correct, choice.threshold);
  double measured_latency = latency.e2e_ms(1 - routed.offload_ratio);

  // The accuracy-offload curve on the test stream itself.
  std::vector<route::CalibrationSample> samples(test.size());
  for (size_t i = 0; i < test.size(); ++i) samples[i] = {scores[i], edge_correct[i], fm_correct[i]};
  auto test_profile = route::build_profile(samples, 200, score->name());
  auto curve = eval::accuracy_offload_curve(test_profile);
  std::filesystem::create_directories(o.out_dir);
  std::vector<std::vector<eval::CsvCell>> rows;
  eval::Series edgefm_series{"EdgeFM (" + score->name() + ")", {}, {}};
  for (const auto& p : curve) {
    rows.push_back({p.offload_ratio, p.accuracy, p.threshold});
    edgefm_series.x.push_back(p.offload_ratio);
    edgefm_series.y.push_back(p.accuracy);
  }
  eval::write_csv(o.out_dir + "/curve.csv", {"offload_ratio", "accuracy", "threshold"}, rows);
  double fm_accuracy = customize::fraction_correct(fm_correct);
  double edge_accuracy = customize::fraction_correct(edge_correct);
  eval::plot_lines(o.out_dir + "/curve.png", "Accuracy vs offload ratio (test set)",
                   "offload ratio (share of samples sent to the FM)", "top-1 accuracy",
                   {edgefm_series,
                    {"FM only", {0, 1}, {fm_accuracy, fm_accuracy}},
                    {"edge only", {0, 1}, {edge_accuracy, edge_accuracy}},
                    {"searched threshold", {routed.offload_ratio}, {routed.accuracy}}});

  Table table({"policy", "accuracy", "offload", "expected latency ms"});
  table.add_row({"FM only", fmt_percent(fm_accuracy), "100 %", fmt_num(latency.e2e_ms(0), 2)});
  table.add_row({"edge only", fmt_percent(edge_accuracy), "0 %", fmt_num(latency.e2e_ms(1), 2)});
  table.add_row({"EdgeFM", fmt_percent(routed.accuracy), fmt_percent(routed.offload_ratio),
                 fmt_num(measured_latency, 2)});
  table.print(std::cout);
  if (!choice.feasible) {
    std::printf("no threshold meets L_app = %.1f ms on this network: answering on the edge\n",
                o.l_app_ms);
  }

  const json customized = student.meta.value("customize", json::object());
  size_t uploaded = customized.value("uploaded", size_t{0});
  double uploaded_fraction = customized.value("uploaded_fraction", 0.0);
  json report = {
      {"fm", {{"version", fm.version},
              {"accuracy", fm_accuracy},
              {"params", fm.image->parameter_count()},
              {"multiply_adds", fm.image->multiply_adds()},
              {"latency_ms_b1", fm_latency.median_ms}}},
      {"edge", {{"arch", student.encoder->arch()},
                {"artifact", o.student},
                {"accuracy", edge_accuracy},
                {"params", student.encoder->parameter_count()},
                {"multiply_adds", student.encoder->multiply_adds()},
                {"latency_ms_b1", edge_latency.median_ms},
                {"uploaded", uploaded},
                {"uploaded_fraction", uploaded_fraction}}},
      {"edgefm", {{"accuracy", routed.accuracy},
                  {"offload_ratio", routed.offload_ratio},
                  {"threshold", choice.threshold},
                  {"feasible", choice.feasible},
                  {"expected_accuracy", choice.expected_accuracy},
                  {"expected_latency_ms", choice.expected_latency_ms},
                  {"latency_ms", measured_latency},
                  {"l_app_ms", o.l_app_ms},
                  {"network", {{"rtt_ms", o.rtt_ms},
                               {"bandwidth_mbps", o.bandwidth_mbps},
                               {"payload_bytes", latency.payload_bytes},
                               {"t_cloud_ms", latency.t_cloud_ms},
                               {"t_edge_ms", latency.t_edge_ms}}}}},
      {"curve_csv", o.out_dir + "/curve.csv"},
      {"curve_png", o.out_dir + "/curve.png"},
      {"test_images", test.size()}};

  // Open set: students customized on each split's seen classes only.
  json open_set = {{"score", score->name()}, {"splits", json::array()}};
  if (!o.open_set.empty()) {
    auto train = data::load_dataset(description, data::Part::train, o.data.train_limit);
    Table open_table({"split", "score", "AUROC", "FPR@95TPR"});
    for (size_t s = 0; s < o.open_set.size(); ++s) {
      auto at = o.open_set[s].find('=');
      if (at == std::string::npos) {
        fail_expected("--open-set", "SPLIT_JSON=STUDENT", "'" + o.open_set[s] + "'");
      }
      auto split = data::load_split(o.open_set[s].substr(0, at));
      data::check_split(split, static_cast<int>(test.class_names.size()));
      auto open_student = models::load_student(o.open_set[s].substr(at + 1));
      auto scores_json = open_set_scores(open_student, train, test, split, o.fit_images,
                                         score->name(), open_table);
      const auto& routing = scores_json.at(score->name());
      open_set["splits"].push_back({{"split", split.name}, {"seen", split.seen}, {"scores", scores_json}});
      if (s == 0) {
        open_set["auroc"] = routing.at("auroc");
        open_set["fpr95"] = routing.at("fpr95");
        open_set["auroc_untrained"] = scores_json.at("untrained:" + score->name()).at("auroc");
      } else if (s == 1) {
        open_set["auroc_split2"] = routing.at("auroc");
        open_set["fpr95_split2"] = routing.at("fpr95");
      }
    }
    std::cout << "\nOpen set (seen-class test samples positive, unseen negative):\n";
    open_table.print(std::cout);
  }
  report["open_set"] = open_set;
  report["provenance"] = provenance();
  if (!o.json_path.empty()) write_json_file(o.json_path, report);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* c = app.add_subcommand(
      "eval",
      "Offline evaluation on the test set: FM only, edge only and EdgeFM at the threshold\n"
      "searched for --l-app-ms on an assumed network; open-set AUROC and FPR@95TPR of every\n"
      "score; the accuracy-offload curve (CSV + PNG in --out-dir)");
  add_data_options(*c, o->data);
  add_fm_options(*c, o->fm);
  c->add_option("--student", o->student, "Student artifact from `edgefm customize`")->capture_default_str();
  c->add_option("--open-set", o->open_set,
                "SPLIT_JSON=STUDENT: a student customized on the split's seen classes only "
                "(repeat; the first is the default split, the second split 2)");
  c->add_option("--l-app-ms", o->l_app_ms, "Latency budget L_app per sample")->capture_default_str()
      ->check(positive_number());
  c->add_option("--rtt-ms", o->rtt_ms, "Assumed network round trip")->capture_default_str();
  c->add_option("--uplink-mbps", o->bandwidth_mbps, "Assumed uplink bandwidth")->capture_default_str()
      ->check(positive_number());
  c->add_option("--payload-bytes", o->payload_bytes,
                "Bytes sent per cloud query (0: the student's 8-bit sample tensor + 300 bytes of "
                "framing, as the edge sends it)")
      ->capture_default_str();
  c->add_option("--cloud-ms", o->t_cloud_ms, "Cloud service time (default: measured FM batch-1)");
  c->add_option("--fit-images", o->fit_images,
                "Seen-class training images used to fit the knn/proto/mahalanobis scores for the open-set table")
      ->capture_default_str()
      ->check(positive_number());
  c->add_option("--out-dir", o->out_dir, "Folder for curve.csv and curve.png")->capture_default_str();
  c->add_option("--json", o->json_path, "Write the report as JSON");
  c->callback([o] { run_eval(*o); });
}

}  // namespace edgefm::cli
