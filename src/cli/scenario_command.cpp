// edgefm scenario: the open-set scenario, live (harness/scenario.h, docs/scenario.md).
#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "common/table.h"
#include "customize/job.h"
#include "customize/selection_study.h"
#include "data/dataset.h"
#include "harness/scenario.h"
#include "models/foundation.h"
#include "route/scores.h"

namespace edgefm::cli {
namespace {

struct ScenarioCommandOptions {
  harness::ScenarioOptions scenario = harness::scenario_default_options();
  size_t post_shift = 5000;  // selection study: the post-shift stream uploads are chosen from
  std::vector<double> budgets = {0.01, 0.02, 0.05};  // ... shares of it
  int study_epochs = 8;
  size_t random_repeats = 2;
  bool no_study = false;
  bool study_oracle = true;  // also the label oracle's reference rows
};

// The offline selection comparison and the FM's reference accuracy need the FM in-process.
harness::ScenarioHooks make_hooks(const ScenarioCommandOptions& c,
                               std::shared_ptr<models::FoundationModel> fm) {
  harness::ScenarioHooks hooks;
  const data::DatasetDescription description = harness::scenario_description(c.scenario);
  hooks.fm_correct = [fm, description](const data::Split& split, size_t samples) {
    const data::Dataset test = data::load_dataset(description, data::Part::test);
    std::vector<size_t> order = data::stream_order(test, split);
    if (order.size() > samples) order.resize(samples);
    const data::Dataset part = test.subset(order);
    const customize::Embedded e = customize::embed_dataset(*fm->image, fm->pool, part);
    return customize::correct_predictions(e, customize::pool_to_label(fm->pool, part), part.labels);
  };
  if (c.no_study) return hooks;
  hooks.selection = [c, fm, description](const harness::SelectionStudyInput& in) {
    const data::Dataset train = data::load_dataset(description, data::Part::train);
    const data::Dataset test = data::load_dataset(description, data::Part::test);
    // The history the cloud holds (as uploaded in the bootstrap), then the post-shift stream:
    // the next training images, every class.
    std::vector<size_t> history, post;
    size_t i = 0;
    for (; i < train.size() && history.size() < in.history; ++i) {
      if (in.split.is_seen(train.labels[i])) history.push_back(i);
    }
    for (; i < train.size() && post.size() < c.post_shift; ++i) post.push_back(i);
    if (post.empty()) throw Error("scenario: no training images left for the post-shift stream");
    customize::SelectionStudyParams p = customize::selection_study_default_params();
    p.budgets.clear();
    for (double share : c.budgets) {
      p.budgets.push_back(static_cast<size_t>(share * static_cast<double>(post.size()) + 0.5));
    }
    p.random_repeats = c.random_repeats;
    if (c.study_oracle) p.strategies.push_back(customize::kLabelOracle);
    p.distill.epochs = c.study_epochs;
    // Each retraining distills as the scenario's jobs do.
    p.distill.lambda = c.scenario.job_lambda;
    p.distill.balance = c.scenario.job_balance;
    p.outliers = c.scenario.job_outliers;
    std::fprintf(stderr,
                 "[scenario] selection study: %zu history images, %zu post-shift, budgets",
                 history.size(), post.size());
    for (size_t b : p.budgets) std::fprintf(stderr, " %zu", b);
    std::fprintf(stderr, "\n");
    const std::vector<int> unseen =
        in.split.unseen(static_cast<int>(test.class_names.size()));
    const customize::SelectionStudy study = customize::run_selection_study(
        *fm, in.initial_student, train.subset(history), train.subset(post), test, unseen, p,
        [](const std::string& line) { std::fprintf(stderr, "[selection] %s\n", line.c_str()); });
    json j = study.to_json();
    // The contract's rows: strategy, uploaded, edge_accuracy (+ the study's extra fields).
    j["rows"] = json::array();
    for (const auto& r : study.rows) j["rows"].push_back(r.to_json());
    return j;
  };
  return hooks;
}

void run_scenario_command(ScenarioCommandOptions& c, const FmOptions& fm_options) {
  c.scenario.fm_args = fm_options.arguments();
  c.scenario.fm = fm_options.torchscript.empty() ? fm_options.path : fm_options.torchscript;
  json results;
  {
    StopSignals signals;
    c.scenario.stop = &StopSignals::flag();
    auto fm = std::make_shared<models::FoundationModel>(fm_options.load());
    results = harness::run_scenario(c.scenario, make_hooks(c, fm));
  }

  Table timeline({"t (s)", "edge share", "accuracy", "uploads", "model"});
  for (const auto& r : results["timeline"]) {
    timeline.add_row({fmt_num(r.value("t_s", 0.0), 0), fmt_percent(r.value("edge_share", 0.0)),
                      fmt_percent(r.value("accuracy", 0.0)), std::to_string(r.value("uploads", 0)),
                      r.value("model_version", "")});
  }
  timeline.print(std::cout);
  Table detection({"split", "mode", "samples to detection", "trigger"});
  for (const auto& d : results["detection"]) {
    detection.add_row({d.value("split", ""), d.value("mode", ""),
                       d["samples_to_detection"].is_null() ? "not detected"
                                                           : d["samples_to_detection"].dump(),
                       d.value("trigger", "-")});
  }
  detection.print(std::cout);
  if (!results["selection"].empty()) {
    Table selection({"strategy", "uploaded", "edge accuracy"});
    for (const auto& r : results["selection"]) {
      selection.add_row({r.value("strategy", ""), std::to_string(r.value("uploaded", 0)),
                         fmt_percent(r.value("edge_accuracy", 0.0))});
    }
    selection.print(std::cout);
  }
  std::cout << "targets: " << results["targets"].dump() << "\n";
}

}  // namespace

void add_scenario_command(CLI::App& app) {
  auto c = std::make_shared<ScenarioCommandOptions>();
  auto& o = c->scenario;
  CLI::App* command = app.add_subcommand(
      "scenario",
      "The open-set scenario, live: the cloud service with customization and the link emulator\n"
      "as processes; per class split, the device's seen-class history gives its first model\n"
      "(a customization job), then `edgefm edge` replays the test stream with seen classes only\n"
      "until --shift-at and every class after, with audits, selective upload, drift detection,\n"
      "customization jobs and model hot swap; a second run without audits measures detection\n"
      "without them. Offline, the three selection strategies are compared at equal upload\n"
      "budgets. Writes results.json (timeline, selection, detection, architecture, targets),\n"
      "CSVs, timeline.png, selection.png and results.md to --out (docs/scenario.md).");
  auto fm = std::make_shared<FmOptions>();
  add_fm_options(*command, *fm);
  command->add_option("--data", o.data_path,
                      "data set description JSON (default: Fashion-MNIST; docs/data.md)");
  command->add_option("--out-dir", o.out_dir, "output folder")->capture_default_str();
  command->add_option("--trace", o.trace, "uplink trace: a file or a name in --trace-dir")
      ->capture_default_str();
  command->add_option("--trace-dir", o.trace_dir,
                      "folder of the bundled traces (default: $EDGEFM_TRACE_DIR, else "
                      "data/net-traces in the working folder or the source tree)");
  command->add_option("--delay-ms", o.delay_ms, "one-way delay of the link")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--l-app-ms", o.l_app_ms, "the edge's latency budget L_app")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--split", o.splits,
                      "class splits to run: default, even, or split JSON files (repeatable)")
      ->capture_default_str();
  command->add_option("--full-loop-splits", o.full_loop_splits,
                      "the first N splits run the whole loop with jobs; the others detection only")
      ->capture_default_str();
  command->add_option("--history", o.history,
                      "seen-class training images the device uploaded before (its first model)")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--samples", o.samples, "live stream length (test images)")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--shift-at", o.shift_at, "the unseen classes appear from this sample on")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--detection-samples", o.detection_samples,
                      "detection-only runs stop this many samples after the shift")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--rate", o.rate, "stream rate (samples/s)")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--window-s", o.window_s, "timeline window (s)")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--audit", o.audit, "audit share of the samples answered on the edge")
      ->capture_default_str()
      ->check(number_in(0.0, 1.0));
  command->add_option("--upload-strategy", o.upload_strategy,
                      "live selection: random | lowest_margin | margin_diversity")
      ->capture_default_str();
  command->add_option("--upload-per-minute", o.upload_per_minute, "upload budget, samples a minute")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--upload-kbps", o.upload_kbps, "upload budget, kbit/s of uplink")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--drift-upload-s", o.drift_upload_s,
                      "after a drift, every sample is an upload candidate this long")
      ->capture_default_str();
  command->add_option("--job-min-new", o.job_min_new,
                      "samples uploaded after the drift before the job starts")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--job-epochs", o.job_epochs, "distillation epochs of each job")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--lambda", o.job_lambda,
                      "InfoNCE weight of each job (0: the student imitates the FM's embeddings "
                      "only, which keeps unseen classes apart)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--outliers", o.job_outliers,
                      "synthetic outliers per upload in each job (imitated with MSE only)")
      ->capture_default_str()
      ->check(number_in(0.0, 10.0));
  command->add_option("--balance", o.job_balance,
                      "class balance of each job's draws by the FM's pseudo-labels, an exponent "
                      "in [0, 1] (1: every class the same; 0: as uploaded)")
      ->capture_default_str()
      ->check(number_in(0.0, 1.0));
  command->add_option("--score", o.score, "routing score the jobs ship")
      ->capture_default_str()
      ->check(CLI::IsMember(route::score_names()));
  command->add_option("--device-budget-ms", o.device_budget_ms,
                      "the device's batch-1 latency budget for the architecture choice (0: none)")
      ->capture_default_str();
  command->add_option("--second-budget-ms", o.second_budget_ms,
                      "the comparison budget (0: 1.2 x the cheapest architecture's latency)")
      ->capture_default_str();
  command->add_option("--post-shift", c->post_shift,
                      "selection study: post-shift training images to select uploads from")
      ->capture_default_str();
  command->add_option("--budgets", c->budgets,
                      "selection study: upload budgets as shares of the post-shift stream")
      ->capture_default_str();
  command->add_option("--study-epochs", c->study_epochs, "selection study: retraining epochs")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--random-repeats", c->random_repeats,
                      "selection study: random selection averaged over this many seeds")
      ->capture_default_str()
      ->check(positive_number());
  command->add_flag("--no-study", c->no_study, "skip the offline selection study");
  command->add_flag("!--no-study-oracle", c->study_oracle,
                    "selection study: leave out the label oracle's reference rows (uploads drawn "
                    "from the unseen classes by their true labels)");
  command->add_option("--token", o.token, "bearer token between edge and cloud");
  command->callback([c, fm] { run_scenario_command(*c, *fm); });
}

}  // namespace edgefm::cli
