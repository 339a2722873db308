#pragma once
// The open-set scenario (`edgefm scenario`, docs/scenario.md): EdgeFM's whole loop,
// live. The cloud service (with its customization extension) and the link emulator run as
// processes; for each class split:
//   1. bootstrap: the device's history (seen-class images only) is uploaded and a first
//      customization job gives the device its first model (the lookup table picks the
//      architecture for the device's latency budget; the same history under a second budget
//      shows the choice move);
//   2. live run: `edgefm edge` replays the test stream in "shift" order (seen classes only,
//      then every class from `shift_at` on) through the link with audits, selective upload,
//      drift detection, customization jobs and model hot swap, logging every answer and event;
//   3. the same stream without audits (detection only), for the time to detection without;
//   4. offline, the three selection strategies at equal upload budgets (a hook: it needs the
//      FM in this process).
// Results: out_dir/results.json with "timeline" (t_s, edge_share, accuracy, uploads,
// model_version) and "selection" (strategy, uploaded, edge_accuracy) rows plus "detection",
// "architecture" and "targets"; CSVs, timeline.png, selection.png and results.md.
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/json_io.h"
#include "data/dataset.h"
#include "data/split.h"
#include "route/threshold.h"

namespace edgefm::harness {

struct ScenarioOptions {
  std::string program;                  // the edgefm binary (empty: this program)
  std::string fm = "models/fm.pt";      // for messages and results (the reference FM's file)
  std::vector<std::string> fm_args;     // the FM options for `serve` (empty: --fm fm)
  std::string data_path;                // data set description JSON (empty: Fashion-MNIST)
  std::string out_dir = "out/scenario";
  std::string trace = "Verizon-LTE-short";  // a file, or a name in trace_dir
  std::string trace_dir;                // empty: default_trace_dir()
  int64_t delay_ms = 40;                // one-way delay of the link
  double l_app_ms = route::kDefaultLAppMs;  // the edge's latency budget (binds: offload <~ 20 %)
  std::vector<std::string> splits = {"default", "even"};  // names or split JSON files
  size_t full_loop_splits = 1;          // the first N splits run the whole loop (jobs on)
  size_t history = 3000;                // seen-class training images uploaded before the stream
  size_t samples = 6000;                // live stream length
  size_t shift_at = 1500;               // unseen classes appear from this sample on
  size_t detection_samples = 1500;      // detection-only runs stop this long after the shift
  double rate = 50.0;                   // samples/s
  double window_s = 10.0;               // timeline window
  double audit = 0.02;                  // audit share of the samples (0: none)
  double audit_per_minute = 120.0;
  std::string upload_strategy = "margin_diversity";
  double upload_per_minute = 600.0;
  double upload_kbps = 256.0;
  double drift_upload_s = 20.0;
  size_t job_min_new = 300;
  size_t uploads_trigger = 0;           // periodic job trigger (also in the no-audit runs)
  int job_epochs = 10;
  // How every job distills and routes: the InfoNCE weight (0: the student only imitates the
  // FM's embeddings, which keeps unseen classes apart from the seen ones), synthetic outliers
  // per upload, class balance, and the routing score the artifact ships (docs/scenario.md).
  double job_lambda = 0.0;
  double job_outliers = 0.5;
  // Class balance of the draws by the FM's pseudo-labels (distill.h, an exponent): a new
  // class's few dozen uploads weigh more against an old class's thousands.
  double job_balance = 0.5;
  std::string score = "hybrid";
  int table_epochs = 2;
  double device_budget_ms = 0.0;        // the device's latency budget (0: none)
  double second_budget_ms = 0.0;        // the comparison budget (0: 1.2 x the cheapest arch)
  std::string token;
  const std::atomic<bool>* stop = nullptr;
};
ScenarioOptions scenario_default_options();

// What the hooks (torch, in the CLI) get and give.
struct SelectionStudyInput {
  std::string split_name;
  data::Split split;
  std::string initial_student;  // the device's first model
  size_t history = 0;           // the seen-class images of the bootstrap (first N of the train set)
  std::string out_dir;
};
struct ScenarioHooks {
  // Rows {"strategy", "uploaded", "edge_accuracy", ...} plus anything else under "study".
  std::function<json(const SelectionStudyInput&)> selection;
  // Whether the FM answers each of the first `samples` of the split's stream order correctly
  // (indexed by position, the answers' "id"s).
  std::function<std::vector<bool>(const data::Split& split, size_t samples)> fm_correct;
};

// The data set the scenario streams: options.data_path's description, else Fashion-MNIST.
data::DatasetDescription scenario_description(const ScenarioOptions& options);

// A split by name ("default", "even") or from a JSON file.
data::Split resolve_split(const std::string& name_or_path);

// One row of the timeline from a per-sample log and the loop's events: windows of window_s
// seconds of arrival time.
struct TimelineRow {
  double t_s = 0.0;  // window end
  size_t samples = 0;
  double edge_share = 0.0;
  double accuracy = 0.0;
  size_t uploads = 0;  // acknowledged by the service within the window
  std::string model_version;
  double unseen_share = 0.0;  // of the window's samples (truth is a class unseen at first)
  json to_json() const;
};
std::vector<TimelineRow> build_timeline(const std::vector<json>& answers,
                                        const std::vector<json>& events,
                                        const std::vector<std::string>& unseen_classes,
                                        double window_s);

// Where the loop's recovery is read: the full windows (at least half of rate * window_s
// samples) answered mostly by the final model, except the window it arrived in, from the
// shift window on; at least `min_windows` of them, else the last `min_windows` full windows.
// `ids`: the answers' "id"s in those windows (for the FM's accuracy on the same samples).
struct RecoveryPeriod {
  double from_s = 0.0, to_s = 0.0;  // [from_s, to_s) of arrival time
  size_t windows = 0, samples = 0;
  std::string model_version;
  bool final_model = false;  // false: the fallback (too few windows of the final model)
  double edge_share = 0.0, accuracy = 0.0;
  std::vector<size_t> ids;
  json to_json() const;  // every field above except ids
};
RecoveryPeriod recovery_period(const std::vector<TimelineRow>& timeline,
                               const std::vector<json>& answers, size_t shift_window,
                               double window_s, double rate, size_t min_windows = 2);

// Runs everything; writes the outputs; returns results.json's content.
json run_scenario(const ScenarioOptions& options, const ScenarioHooks& hooks);

}  // namespace edgefm::harness
