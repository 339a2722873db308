#include "harness/scenario.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "cloud/client.h"
#include "cloud/customization_client.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/provenance.h"
#include "common/table.h"
#include "data/dataset.h"
#include "harness/experiment.h"
#include "harness/process.h"
#include "edge/runtime.h"
#include "eval/metrics.h"
#include "eval/report.h"

namespace edgefm::harness {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Thrown when SIGINT/SIGTERM asked the scenario to stop: the finished splits are written.
struct Interrupted : Error {
  Interrupted() : Error("scenario interrupted by a signal") {}
};

void check_stop(const ScenarioOptions& o) {
  if (o.stop != nullptr && o.stop->load()) throw Interrupted();
}

std::vector<json> read_jsonl(const fs::path& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  if (!in) return rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) throw Error("scenario: malformed line in '" + path.string() + "'");
    rows.push_back(std::move(j));
  }
  return rows;
}

json split_to_json(const data::Split& s) {
  return {{"name", s.name}, {"seen", s.seen}, {"seed", s.seed}, {"order", s.order},
          {"shift_at", s.shift_at}};
}

// Position in the stream of the first sample whose class was unseen (from shift_at on).
size_t first_unseen_position(const data::Dataset& test, const data::Split& split,
                             size_t samples) {
  const std::vector<size_t> order = data::stream_order(test, split);
  for (size_t i = split.shift_at; i < std::min(samples, order.size()); ++i) {
    if (!split.is_seen(test.labels[order[i]])) return i;
  }
  return samples;
}

// The cloud side of the scenario: serve with the customization extension.
struct Cloud {
  std::unique_ptr<ChildProcess> serve;
  int port = 0;
  cloud::ClientOptions client;
};

// Starts a link on the trace in front of the service; returns its port.
struct Link {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
};

Link start_link(const std::string& program, const Cloud& cloud, const fs::path& trace,
                const ScenarioOptions& o, const fs::path& dir, const std::string& tag) {
  Link link;
  const fs::path port_file = dir / (tag + "-link.port");
  fs::remove(port_file);
  link.process = std::make_unique<ChildProcess>(
      program,
      std::vector<std::string>{"link", "--listen", "127.0.0.1:0", "--upstream",
                               "127.0.0.1:" + std::to_string(cloud.port), "--uplink-trace",
                               trace.string(), "--delay-ms", std::to_string(o.delay_ms),
                               "--port-file", port_file.string(), "--json",
                               (dir / (tag + "-link.json")).string()},
      (dir / (tag + "-link.log")).string());
  link.port = wait_for_port_file(*link.process, port_file, std::chrono::seconds(30),
                                 [&o] { check_stop(o); });
  return link;
}

// Uploads the device's history (the first `count` seen-class training images) straight to
// the service and runs one job; returns its record.
json bootstrap_device(cloud::CustomizationClient& client, const std::string& device,
                      const data::Dataset& train, const data::Split& split, size_t count,
                      const json& request, const ScenarioOptions& o) {
  std::vector<size_t> seen;
  for (size_t i = 0; i < train.size() && seen.size() < count; ++i) {
    if (split.is_seen(train.labels[i])) seen.push_back(i);
  }
  if (seen.empty()) throw Error("scenario: the split has no seen-class training images");
  const models::ImageShape shape = train.spec.shape;
  Progress progress("history " + device, static_cast<int64_t>(seen.size()), "images");
  for (size_t start = 0; start < seen.size(); start += 256) {
    check_stop(o);
    std::vector<std::string_view> batch;
    for (size_t i = start; i < std::min(seen.size(), start + 256); ++i) {
      batch.emplace_back(reinterpret_cast<const char*>(train.sample(seen[i])), train.sample_size());
    }
    client.upload_samples(device, batch, shape);
    progress.update(static_cast<int64_t>(std::min(seen.size(), start + 256)));
  }
  progress.finish();
  const json submitted = client.submit_job(device, request);
  const std::string id = json_field<std::string>(submitted, "id", "job record");
  std::fprintf(stderr, "[scenario] job %s for %s: %zu history images, budget %s\n", id.c_str(),
               device.c_str(), seen.size(), request.value("budget", json::object()).dump().c_str());
  Progress job_progress("job " + device, 100, "%");
  for (;;) {
    check_stop(o);
    const json record = client.job(id);
    const std::string state = record.value("state", "");
    job_progress.update(static_cast<int64_t>(100.0 * record.value("progress", 0.0)),
                        {{"state", state}});
    if (state == "done") {
      job_progress.finish();
      return record;
    }
    if (state == "failed" || state == "cancelled") {
      throw Error("scenario: the bootstrap job of " + device + " " + state + ": " +
                  record.value("error", std::string("(no message)")));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

struct EdgeRun {
  fs::path log, events, summary;
  json result;
};

// One `edgefm edge` run through a fresh link; waits for it and returns its summary.
EdgeRun run_edge(const std::string& program, const Cloud& cloud, const fs::path& trace,
                 const ScenarioOptions& o, const fs::path& dir, const std::string& tag,
                 const std::string& student, const fs::path& split_file, size_t samples,
                 const std::vector<std::string>& extra, const fs::path& job_file) {
  Link link = start_link(program, cloud, trace, o, dir, tag);
  EdgeRun run;
  run.log = dir / (tag + ".jsonl");
  run.events = dir / (tag + "-events.jsonl");
  run.summary = dir / (tag + ".json");
  const fs::path state = dir / (tag + "-state");
  fs::remove_all(state);
  for (const auto& p : {run.log, run.events, run.summary}) fs::remove(p);
  std::vector<std::string> args = {
      "edge", "--student", student, "--server", "http://127.0.0.1:" + std::to_string(link.port),
      "--policy", "edgefm", "--l-app-ms", fmt_num(o.l_app_ms, 6), "--rate", fmt_num(o.rate, 6),
      "--samples", std::to_string(samples), "--split", split_file.string(), "--log",
      run.log.string(), "--json", run.summary.string(), "--rtt-ms",
      fmt_num(2.0 * static_cast<double>(o.delay_ms), 3), "--state", state.string(), "--events", run.events.string(), "--job", job_file.string(),
      "--upload-strategy", o.upload_strategy, "--upload-routed",
      "--upload-per-minute", fmt_num(o.upload_per_minute, 6), "--upload-kbps", fmt_num(o.upload_kbps, 6),
      "--drift-upload-s", fmt_num(o.drift_upload_s, 6), "--job-min-new",
      std::to_string(o.job_min_new),
      "--uploads-trigger", std::to_string(o.uploads_trigger), "--audit-per-minute",
      fmt_num(o.audit_per_minute, 6), "--drain-s", "5", "--quiet"};
  if (!o.token.empty()) args.insert(args.end(), {"--token", o.token});
  if (!o.data_path.empty()) args.insert(args.end(), {"--data", o.data_path});
  args.insert(args.end(), extra.begin(), extra.end());
  ChildProcess edge(program, args, (dir / (tag + "-edge.log")).string());
  const auto deadline =
      Clock::now() + std::chrono::seconds(300 + static_cast<int64_t>(
                                                    3.0 * static_cast<double>(samples) / o.rate));
  LineCounter lines(run.log);
  Progress progress("scenario " + tag, static_cast<int64_t>(samples), "samples");
  std::optional<int> status;
  while (!(status = edge.poll())) {
    check_stop(o);
    if (!cloud.serve->running()) {
      throw Error("the cloud service exited during " + tag + "; its log ends:\n" +
                  cloud.serve->log_tail());
    }
    if (Clock::now() > deadline) {
      throw Error("scenario run " + tag + " did not finish in time; the edge log ends:\n" +
                  edge.log_tail());
    }
    progress.update(static_cast<int64_t>(std::min(lines.count(), samples)));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  progress.finish();
  if (*status != 0) {
    throw Error("scenario run " + tag + ": '" + edge.command_line() + "' exited with status " +
                std::to_string(*status) + "; its log ends:\n" + edge.log_tail());
  }
  link.process->stop();
  run.result = read_json_file(run.summary);
  return run;
}

// The first event of one of `kinds`; nullptr when none.
const json* first_event(const std::vector<json>& events, const std::set<std::string>& kinds) {
  for (const json& e : events) {
    if (kinds.count(e.value("event", ""))) return &e;
  }
  return nullptr;
}

// Open-set AUROC of the routing score on a live run: samples answered by the first model
// (version `first_version`), seen classes positive, as in `edgefm eval`.
json live_open_set(const std::vector<json>& answers, const std::vector<std::string>& unseen_names,
                   const std::string& first_version) {
  const std::set<std::string> unseen(unseen_names.begin(), unseen_names.end());
  std::vector<float> seen_scores, unseen_scores;
  for (const json& a : answers) {
    if (a.value("model_version", "") != first_version) continue;
    const json truth = a.value("truth", json());
    if (!truth.is_string()) continue;
    (unseen.count(truth.get<std::string>()) ? unseen_scores : seen_scores)
        .push_back(a.value("score", 0.0f));
  }
  if (seen_scores.empty() || unseen_scores.empty()) return nullptr;
  return {{"auroc", eval::auroc(seen_scores, unseen_scores)},
          {"fpr95", eval::fpr_at_tpr(seen_scores, unseen_scores, 0.95)},
          {"seen", seen_scores.size()},
          {"unseen", unseen_scores.size()}};
}

}  // namespace

ScenarioOptions scenario_default_options() { return ScenarioOptions{}; }

data::DatasetDescription scenario_description(const ScenarioOptions& options) {
  return options.data_path.empty() ? data::fashion_mnist_description()
                                   : data::load_description(options.data_path);
}

data::Split resolve_split(const std::string& name) {
  if (name == "default") return data::default_split();
  if (name == "even") return data::even_split();
  if (!fs::exists(name)) {
    throw Error("scenario: split '" + name + "' is neither 'default', 'even' nor a split JSON file");
  }
  return data::load_split(name);
}

json TimelineRow::to_json() const {
  return {{"t_s", t_s},
          {"samples", samples},
          {"edge_share", edge_share},
          {"accuracy", accuracy},
          {"uploads", uploads},
          {"model_version", model_version},
          {"unseen_share", unseen_share}};
}

std::vector<TimelineRow> build_timeline(const std::vector<json>& answers,
                                        const std::vector<json>& events,
                                        const std::vector<std::string>& unseen_classes,
                                        double window_s) {
  if (!(window_s > 0.0)) fail_expected("timeline window", "> 0 s", std::to_string(window_s));
  const std::set<std::string> unseen(unseen_classes.begin(), unseen_classes.end());
  struct Acc {
    size_t n = 0, edge = 0, correct = 0, unseen = 0, uploads = 0;
    std::map<std::string, size_t> versions;
  };
  std::map<int64_t, Acc> windows;
  for (const json& a : answers) {
    const double t = a.value("arrival_s", 0.0);
    Acc& w = windows[static_cast<int64_t>(std::floor(t / window_s))];
    ++w.n;
    w.edge += a.value("route", "") == "edge";
    w.correct += a.value("correct", false);
    const json truth = a.value("truth", json());
    if (truth.is_string() && unseen.count(truth.get<std::string>())) ++w.unseen;
    ++w.versions[a.value("model_version", "")];
  }
  for (const json& e : events) {
    if (e.value("event", "") != "uploaded") continue;
    const double t = e.value("t_s", 0.0);
    windows[static_cast<int64_t>(std::floor(t / window_s))].uploads += e.value("samples", 0);
  }
  std::vector<TimelineRow> rows;
  for (const auto& [index, w] : windows) {
    if (w.n == 0) continue;  // uploads after the stream ended
    TimelineRow r;
    r.t_s = static_cast<double>(index + 1) * window_s;
    r.samples = w.n;
    r.edge_share = static_cast<double>(w.edge) / static_cast<double>(w.n);
    r.accuracy = static_cast<double>(w.correct) / static_cast<double>(w.n);
    r.unseen_share = static_cast<double>(w.unseen) / static_cast<double>(w.n);
    r.uploads = w.uploads;
    r.model_version = std::max_element(w.versions.begin(), w.versions.end(),
                                       [](const auto& a, const auto& b) { return a.second < b.second; })
                          ->first;
    rows.push_back(std::move(r));
  }
  return rows;
}

json RecoveryPeriod::to_json() const {
  return {{"from_s", from_s},         {"to_s", to_s},
          {"windows", windows},       {"samples", samples},
          {"model_version", model_version}, {"final_model", final_model},
          {"edge_share", edge_share}, {"accuracy", accuracy}};
}

RecoveryPeriod recovery_period(const std::vector<TimelineRow>& timeline,
                               const std::vector<json>& answers, size_t shift_window,
                               double window_s, double rate, size_t min_windows) {
  RecoveryPeriod period;
  auto full = [&](const TimelineRow& r) {
    return static_cast<double>(r.samples) * 2.0 >= rate * window_s;
  };
  std::vector<size_t> chosen;  // timeline rows
  if (!timeline.empty()) {
    period.model_version = timeline.back().model_version;
    for (size_t i = std::max<size_t>(shift_window, 1); i < timeline.size(); ++i) {
      if (full(timeline[i]) && timeline[i].model_version == period.model_version &&
          timeline[i - 1].model_version == period.model_version) {
        chosen.push_back(i);
      }
    }
    period.final_model = chosen.size() >= min_windows;
    if (!period.final_model) {
      chosen.clear();
      for (size_t i = timeline.size(); i-- > 0 && chosen.size() < min_windows;) {
        if (full(timeline[i])) chosen.insert(chosen.begin(), i);
      }
    }
  }
  if (chosen.empty()) return period;
  std::set<int64_t> windows;
  for (size_t i : chosen) {
    windows.insert(std::llround(timeline[i].t_s / window_s) - 1);  // t_s is the window's end
    period.samples += timeline[i].samples;
    period.edge_share += timeline[i].edge_share * static_cast<double>(timeline[i].samples);
    period.accuracy += timeline[i].accuracy * static_cast<double>(timeline[i].samples);
  }
  period.windows = chosen.size();
  period.edge_share /= static_cast<double>(period.samples);
  period.accuracy /= static_cast<double>(period.samples);
  period.from_s = timeline[chosen.front()].t_s - window_s;
  period.to_s = timeline[chosen.back()].t_s;
  for (const json& a : answers) {
    const auto w = static_cast<int64_t>(std::floor(a.value("arrival_s", 0.0) / window_s));
    if (windows.count(w) && a.contains("id")) period.ids.push_back(a.at("id").get<size_t>());
  }
  return period;
}

json run_scenario(const ScenarioOptions& o, const ScenarioHooks& hooks) {
  const std::string program = o.program.empty() ? self_executable() : o.program;
  if (o.splits.empty()) throw Error("scenario: no splits to run");
  if (!(o.rate > 0.0)) fail_expected("scenario --rate", "samples/s > 0", std::to_string(o.rate));
  if (o.shift_at == 0 || o.shift_at >= o.samples) {
    fail_expected("scenario --shift-at", "a sample index in (0, --samples)",
                  std::to_string(o.shift_at));
  }
  if (!(o.audit > 0.0 && o.audit <= 1.0)) {
    fail_expected("scenario --audit", "a share in (0, 1]", std::to_string(o.audit));
  }
  fs::path trace = o.trace;
  const fs::path trace_dir = o.trace_dir.empty() ? default_trace_dir() : o.trace_dir;
  if (!fs::exists(trace)) trace = trace_dir / o.trace;
  if (!fs::exists(trace)) trace = trace_dir / (o.trace + ".up");
  if (!fs::exists(trace)) {
    throw Error("scenario: trace '" + o.trace + "' is neither a file nor a trace in '" +
                trace_dir.string() + "'");
  }
  std::vector<data::Split> splits;
  for (const auto& s : o.splits) splits.push_back(resolve_split(s));

  const fs::path out = o.out_dir;
  const fs::path runs = out / "runs";
  fs::remove_all(runs);
  fs::create_directories(runs);
  const data::DatasetDescription description = scenario_description(o);
  const data::Dataset train = data::load_dataset(description, data::Part::train);
  const data::Dataset test = data::load_dataset(description, data::Part::test);
  for (const auto& s : splits) data::check_split(s, static_cast<int>(test.class_names.size()));
  const size_t samples = std::min(o.samples, test.size());

  // The device's profile, measured here as on the device.
  const fs::path profile_file = runs / "device-profile.json";
  {
    std::fprintf(stderr, "[scenario] profiling the edge architectures on this machine\n");
    // At the data's sample shape (and its front end: audio's log-mel).
    const fs::path spec_file = runs / "sample-spec.json";
    write_json_file(spec_file, data::to_json(train.spec));
    ChildProcess profile(program,
                         {"profile", "--json", profile_file.string(), "--repetitions", "100",
                          "--threads", "1", "--spec", spec_file.string()},
                         (runs / "profile.log").string());
    const std::optional<int> status = profile.wait_for(std::chrono::minutes(5));
    if (!status || *status != 0) {
      throw Error("scenario: `edgefm profile` failed; its log ends:\n" + profile.log_tail());
    }
  }
  const json profile = read_json_file(profile_file);
  double cheapest_ms = std::numeric_limits<double>::infinity();
  for (const auto& a : profile.at("architectures")) {
    cheapest_ms = std::min(cheapest_ms, a.at("latency_ms").get<double>());
  }
  const double second_budget_ms = o.second_budget_ms > 0.0 ? o.second_budget_ms : 1.2 * cheapest_ms;

  // The cloud, fresh.
  const fs::path service_dir = runs / "customization";
  Cloud cloud;
  {
    const std::vector<std::string> args =
        local_serve_arguments(o.fm, o.fm_args, (runs / "serve.port").string(),
                              {"--customization-dir", service_dir.string()}, o.token);
    std::fprintf(stderr, "[scenario] starting the cloud service (%s)\n", o.fm.c_str());
    cloud.serve = std::make_unique<ChildProcess>(program, args, (runs / "serve.log").string());
    cloud.port = wait_for_port_file(*cloud.serve, runs / "serve.port", std::chrono::seconds(300),
                                    [&o] { check_stop(o); });
    cloud.client = cloud::client_default_options();
    cloud.client.url = "http://127.0.0.1:" + std::to_string(cloud.port);
    cloud.client.token = o.token;
    cloud.client.read_timeout_s = 60.0;
    cloud::OipClient(cloud.client).wait_until_ready(60.0);
  }
  cloud::CustomizationClient service(cloud.client);

  // One job request for every job: the bootstrap here and the edge's own (--job FILE).
  json job_request = {{"profile", profile},          {"epochs", o.job_epochs},
                      {"table_epochs", o.table_epochs}, {"lambda", o.job_lambda},
                      {"outliers", o.job_outliers},   {"score", o.score},
                      {"balance", o.job_balance}};
  if (o.device_budget_ms > 0.0) job_request["budget"] = {{"latency_ms", o.device_budget_ms}};
  const fs::path job_file = runs / "job-request.json";
  write_json_file(job_file, job_request);

  json results = json::object();
  json detection = json::array();
  json architecture = json::array();
  json timeline_json = json::array();
  json selection_json = json::array();
  json per_split = json::array();
  std::vector<TimelineRow> main_timeline;
  double main_fm_accuracy = std::nan("");
  RecoveryPeriod main_recovery;
  double main_fm_recovery = std::nan("");  // the FM on the recovery period's samples
  size_t main_shift_window = 0;
  std::vector<std::string> images;

  bool interrupted = false;
  try {
  for (size_t k = 0; k < splits.size(); ++k) {
    data::Split split = splits[k];
    split.order = "shift";
    split.shift_at = o.shift_at;
    const std::string name = split.name.empty() ? "split" + std::to_string(k) : split.name;
    const fs::path dir = runs / name;
    fs::create_directories(dir);
    const fs::path split_file = dir / "split.json";
    write_json_file(split_file, split_to_json(split));
    std::vector<std::string> unseen_names;
    for (int c : split.unseen(static_cast<int>(test.class_names.size()))) {
      unseen_names.push_back(test.class_names[static_cast<size_t>(c)]);
    }

    // 1. Bootstrap: history, first model, and the choice under a second budget.
    const std::string device = "scenario-" + name;
    const json job = bootstrap_device(service, device, train, split, o.history, job_request, o);
    const int version = job.value("version", 1);
    const fs::path first_model = dir / "v1.pt";
    service.download_artifact(device, version, first_model);
    const json result = job.value("result", json::object());
    architecture.push_back({{"split", name},
                            {"budget_ms", o.device_budget_ms > 0.0 ? json(o.device_budget_ms)
                                                                   : json("none")},
                            {"arch", job.value("arch", "")},
                            {"table", result.value("lookup_table", json())}});
    if (k == 0) {
      json tight = job_request;
      tight["budget"] = {{"latency_ms", second_budget_ms}};
      tight["epochs"] = 1;  // only the choice matters here
      const json second = bootstrap_device(service, device + "-tight", train, split,
                                           std::min<size_t>(o.history, 1000), tight, o);
      const json second_result = second.value("result", json::object());
      architecture.push_back({{"split", name},
                              {"budget_ms", second_budget_ms},
                              {"arch", second.value("arch", "")},
                              {"table", second_result.value("lookup_table", json())}});
    }

    // 2. Live runs: with audits (the whole loop on the first splits), without audits.
    const bool full = k < o.full_loop_splits;
    const size_t detection_length = std::min(samples, o.shift_at + o.detection_samples);
    const size_t audit_length = full ? samples : detection_length;
    std::vector<std::string> extra = {"--audit", fmt_num(o.audit, 6)};
    if (!full) extra.push_back("--no-jobs");
    // The runs use their own device names, so each starts from the bootstrap store.
    auto with_device = [&](std::vector<std::string> args, const std::string& d) {
      args.insert(args.end(), {"--device-name", d});
      return args;
    };
    std::fprintf(stderr, "[scenario] %s: live run with audits (%zu samples, shift at %zu)\n",
                 name.c_str(), audit_length, o.shift_at);
    EdgeRun with_audit = run_edge(program, cloud, trace, o, dir, "audit", first_model.string(),
                                  split_file, audit_length, with_device(extra, device), job_file);
    std::fprintf(stderr, "[scenario] %s: live run without audits (%zu samples)\n", name.c_str(),
                 detection_length);
    EdgeRun without = run_edge(program, cloud, trace, o, dir, "no-audit", first_model.string(),
                               split_file, detection_length,
                               with_device({"--audit", "0", "--no-jobs"}, device + "-noaudit"),
                               job_file);

    const size_t first_unseen = first_unseen_position(test, split, samples);
    // Samples from the first unseen one to `at` (negative: a false alarm before the shift).
    auto samples_from_shift = [&](size_t at) {
      return at >= first_unseen ? json(at - first_unseen)
                                : json(-static_cast<int64_t>(first_unseen - at));
    };
    auto detection_row = [&](const EdgeRun& run, const std::string& mode, size_t length) {
      const std::vector<json> events = read_jsonl(run.events);
      const json* drift = first_event(events, {"drift", "upload_trigger"});
      json row = {{"split", name}, {"mode", mode}, {"first_unseen_sample", first_unseen},
                  {"samples_run", length},
                  {"audits", run.result.value("runtime", json::object()).value("audits", 0)},
                  {"audit_share", run.result.value("runtime", json::object()).value("audits", 0) /
                                      std::max(1.0, static_cast<double>(length))}};
      if (drift != nullptr) {
        const size_t at = drift->value("observed", size_t{0});
        row["detected"] = true;
        row["trigger"] = drift->value("event", "");
        if (drift->contains("source")) row["drift_source"] = drift->value("source", "");
        row["detected_at_sample"] = at;
        row["samples_to_detection"] = samples_from_shift(at);
        row["t_s"] = drift->value("t_s", 0.0);
      } else {
        row["detected"] = false;
        row["samples_to_detection"] = nullptr;
      }
      // Each detector on its own: the first drift it declared (null: none).
      for (const char* source : {"audits", "offload"}) {
        json first = nullptr;
        for (const json& e : events) {
          if (e.value("event", "") == "drift" && e.value("source", "") == source) {
            first = samples_from_shift(e.value("observed", size_t{0}));
            break;
          }
        }
        row["samples_to_detection_by"][source] = first;
      }
      return row;
    };
    json audit_row = detection_row(with_audit, "audit", audit_length);
    audit_row["live_open_set"] =
        live_open_set(read_jsonl(with_audit.log), unseen_names, std::to_string(version));
    detection.push_back(audit_row);
    detection.push_back(detection_row(without, "no audit", detection_length));

    json split_json = {{"split", name}, {"seen", split.seen}, {"unseen", unseen_names},
                       {"first_model", first_model.string()}, {"arch", job.value("arch", "")},
                       {"audit_run", with_audit.result}, {"no_audit_run", without.result}};
    if (full) {
      const std::vector<json> answers = read_jsonl(with_audit.log);
      const std::vector<json> events = read_jsonl(with_audit.events);
      std::vector<TimelineRow> timeline = build_timeline(answers, events, unseen_names, o.window_s);
      json rows = json::array();
      for (const auto& r : timeline) {
        json row = r.to_json();
        row["split"] = name;
        rows.push_back(row);
        if (k == 0) timeline_json.push_back(row);
      }
      split_json["timeline"] = rows;
      json loop_events = json::array();
      for (const json& e : events) {
        if (e.value("event", "") != "audit" && e.value("event", "") != "uploaded") {
          loop_events.push_back(e);
        }
      }
      split_json["events"] = loop_events;
      if (k == 0) {
        main_timeline = timeline;
        main_shift_window = static_cast<size_t>(static_cast<double>(o.shift_at) / o.rate / o.window_s);
        main_recovery = recovery_period(timeline, answers, main_shift_window, o.window_s, o.rate);
        if (hooks.fm_correct) {
          const std::vector<bool> fm = hooks.fm_correct(split, samples);
          auto accuracy = [&](const std::vector<size_t>& positions) {
            size_t n = 0, correct = 0;
            for (size_t p : positions) {
              if (p >= fm.size()) continue;
              ++n;
              correct += fm[p];
            }
            return n ? static_cast<double>(correct) / static_cast<double>(n) : std::nan("");
          };
          std::vector<size_t> after_shift;
          for (size_t i = o.shift_at; i < samples; ++i) after_shift.push_back(i);
          main_fm_accuracy = accuracy(after_shift);
          main_fm_recovery = accuracy(main_recovery.ids);
        }
      }
    }
    per_split.push_back(split_json);

    // 4. Selection strategies, offline, on the first split.
    if (k == 0 && hooks.selection) {
      SelectionStudyInput input{name, split, first_model.string(), o.history, (out / "selection").string()};
      const json study = hooks.selection(input);
      for (const auto& r : study.at("rows")) selection_json.push_back(r);
      results["selection_study"] = study;
    }
  }
  } catch (const Interrupted&) {
    // The split in progress is stopped (its processes with it); the finished ones are kept.
    interrupted = true;
  }
  cloud.serve->stop();

  // Targets.
  json targets = json::object();
  if (!main_timeline.empty()) {
    double min_share = 1.0;
    for (size_t i = main_shift_window; i < main_timeline.size(); ++i) {
      min_share = std::min(min_share, main_timeline[i].edge_share);
    }
    // Recovered: the windows of the final model (recovery_period), against the FM on the
    // same samples.
    targets["edge_share_min_after_shift"] = min_share;
    targets["edge_share_final"] = main_recovery.edge_share;
    targets["accuracy_final"] = main_recovery.accuracy;
    targets["fm_accuracy_final"] = main_fm_recovery;
    targets["recovery_period"] = main_recovery.to_json();
    targets["fm_accuracy_after_shift"] = main_fm_accuracy;
    targets["recovered"] = main_recovery.edge_share >= 0.8 && std::isfinite(main_fm_recovery) &&
                           main_recovery.accuracy >= main_fm_recovery - 0.02;
  }
  if (!selection_json.empty()) {
    size_t largest = 0;
    for (const auto& r : selection_json) largest = std::max(largest, r.value("uploaded", size_t{0}));
    double random_acc = std::nan(""), best = -1.0, oracle = std::nan("");
    std::string best_strategy;
    for (const auto& r : selection_json) {
      if (r.value("uploaded", size_t{0}) != largest) continue;
      const double a = r.value("edge_accuracy", 0.0);
      if (r.value("strategy", "") == "random") {
        random_acc = a;
      } else if (r.value("strategy", "") == "label_oracle") {
        oracle = a;  // a reference (it reads the labels), never the best strategy
      } else if (a > best) {
        best = a;
        best_strategy = r.value("strategy", "");
      }
    }
    targets["selection_budget"] = largest;
    targets["selection_best_strategy"] = best_strategy;
    targets["selection_gain_over_random"] = best - random_acc;
    targets["selection_gain_ok"] = best - random_acc >= 0.03;
    // How much any selection could gain here: the label oracle over random (null: not run).
    targets["selection_oracle_gain_over_random"] = oracle - random_acc;
  }
  if (architecture.size() >= 2) {
    targets["architecture_changes_with_budget"] =
        architecture[0].value("arch", "") != architecture[1].value("arch", "");
  }
  bool detected_all = true;
  for (const auto& d : detection) {
    if (d.value("mode", "") != "audit") continue;
    const json& s = d["samples_to_detection"];
    detected_all = detected_all && s.is_number() && s.get<double>() >= 0 && s.get<double>() <= 500;
  }
  targets["audit_detection_within_500"] = detected_all;

  results["timeline"] = timeline_json;
  results["selection"] = selection_json;
  results["detection"] = detection;
  results["architecture"] = architecture;
  results["targets"] = targets;
  results["splits"] = per_split;
  results["interrupted"] = interrupted;
  results["settings"] = {{"fm", o.fm}, {"data", o.data_path}, {"trace", trace.stem().string()}, {"delay_ms", o.delay_ms},
                         {"l_app_ms", o.l_app_ms}, {"history", o.history}, {"samples", samples},
                         {"shift_at", o.shift_at}, {"rate", o.rate}, {"window_s", o.window_s},
                         {"audit", o.audit}, {"upload_strategy", o.upload_strategy},
                         {"upload_per_minute", o.upload_per_minute},
                         {"upload_kbps", o.upload_kbps}, {"job_min_new", o.job_min_new},
                         {"job_epochs", o.job_epochs}, {"second_budget_ms", second_budget_ms}};
  results["provenance"] = provenance();
  write_json_file(out / "results.json", results);

  // CSVs and plots.
  {
    std::vector<std::vector<eval::CsvCell>> rows;
    for (const auto& r : main_timeline) {
      rows.push_back({r.t_s, r.samples, r.edge_share, r.accuracy, r.uploads, r.model_version,
                      r.unseen_share});
    }
    eval::write_csv(out / "timeline.csv",
                    {"t_s", "samples", "edge_share", "accuracy", "uploads", "model_version",
                     "unseen_share"},
                    rows);
    std::vector<std::vector<eval::CsvCell>> sel;
    for (const auto& r : selection_json) {
      sel.push_back({r.value("strategy", ""), r.value("uploaded", size_t{0}),
                     r.value("edge_accuracy", 0.0)});
    }
    eval::write_csv(out / "selection.csv", {"strategy", "uploaded", "edge_accuracy"}, sel);
  }
  if (!main_timeline.empty()) {
    eval::Series share{"edge share", {}, {}}, accuracy{"accuracy", {}, {}},
        unseen{"unseen-class share of the stream", {}, {}}, uploads{"uploads (x 1/100)", {}, {}};
    eval::Series version{"model version (x 1/10)", {}, {}};
    for (const auto& r : main_timeline) {
      share.x.push_back(r.t_s);
      share.y.push_back(r.edge_share);
      accuracy.x.push_back(r.t_s);
      accuracy.y.push_back(r.accuracy);
      unseen.x.push_back(r.t_s);
      unseen.y.push_back(r.unseen_share);
      uploads.x.push_back(r.t_s);
      uploads.y.push_back(static_cast<double>(r.uploads) / 100.0);
      version.x.push_back(r.t_s);
      version.y.push_back(std::atof(r.model_version.c_str()) / 10.0);
    }
    std::vector<eval::Series> series = {share, accuracy, unseen, uploads, version};
    if (std::isfinite(main_fm_accuracy)) {
      series.push_back({"FM accuracy after the shift",
                        {main_timeline.front().t_s, main_timeline.back().t_s},
                        {main_fm_accuracy, main_fm_accuracy}});
    }
    if (eval::plot_lines(out / "timeline.png",
                         "Open-set scenario (" + per_split[0].value("split", "") +
                             " split): unseen classes from sample " + std::to_string(o.shift_at),
                         "time (s)", "share / accuracy", series)) {
      images.push_back("timeline.png");
    }
  }
  if (!selection_json.empty()) {
    std::map<std::string, eval::Series> by_strategy;
    for (const auto& r : selection_json) {
      const std::string s = r.value("strategy", "");
      auto& series = by_strategy[s];
      series.name = s;
      series.x.push_back(r.value("uploaded", 0.0));
      series.y.push_back(r.value("edge_accuracy", 0.0));
    }
    std::vector<eval::Series> series;
    for (auto& [name, s] : by_strategy) series.push_back(std::move(s));
    if (eval::plot_lines(out / "selection.png",
                         "Edge accuracy after one customization vs samples uploaded",
                         "samples uploaded after the shift", "edge top-1 accuracy (test set)",
                         series)) {
      images.push_back("selection.png");
    }
  }

  // results.md
  eval::MarkdownReport report("EdgeFM open-set scenario");
  report.paragraph(
      "Cloud service with customization (`edgefm serve --customization-dir`), link emulator on "
      "trace `" + trace.stem().string() + "` (one-way delay " + std::to_string(o.delay_ms) +
      " ms) and the edge (`edgefm edge --state ...`) as separate processes. Each split: the "
      "device's history (" + std::to_string(o.history) + " seen-class training images) gives its "
      "first model through a customization job; then " + std::to_string(samples) +
      " test samples at " + fmt_num(o.rate, 0) + "/s, seen classes only until sample " +
      std::to_string(o.shift_at) + ", every class after. Audits: " + fmt_num(100.0 * o.audit, 1) +
      " % of the samples answered on the edge; L_app " + fmt_num(o.l_app_ms, 1) + " ms.");
  if (!main_timeline.empty()) {
    report.heading("Timeline (" + per_split[0].value("split", "") + " split)");
    Table t({"t (s)", "samples", "edge share", "accuracy", "unseen share", "uploads", "model"});
    for (const auto& r : main_timeline) {
      t.add_row({fmt_num(r.t_s, 0), std::to_string(r.samples), fmt_percent(r.edge_share),
                 fmt_percent(r.accuracy), fmt_percent(r.unseen_share), std::to_string(r.uploads),
                 r.model_version});
    }
    report.table(t);
    if (std::isfinite(main_fm_accuracy)) {
      report.paragraph("FM accuracy on the stream after the shift: " +
                       fmt_percent(main_fm_accuracy) + ".");
    }
    if (main_recovery.windows > 0) {
      report.paragraph(
          "Recovery, read over " + std::to_string(main_recovery.windows) + " windows (" +
          fmt_num(main_recovery.from_s, 0) + "-" + fmt_num(main_recovery.to_s, 0) + " s, " +
          std::to_string(main_recovery.samples) + " samples" +
          (main_recovery.final_model ? ", model " + main_recovery.model_version + " after it arrived"
                                     : ", the last full windows: the final model had too few") +
          "): edge share " + fmt_percent(main_recovery.edge_share) + ", accuracy " +
          fmt_percent(main_recovery.accuracy) +
          (std::isfinite(main_fm_recovery) ? " against the FM's " + fmt_percent(main_fm_recovery) +
                                                 " on the same samples"
                                           : std::string()) +
          ".");
    }
  }
  {
    report.heading("Detection of the shift");
    Table t({"split", "mode", "first unseen sample", "detected at", "samples to detection",
             "trigger", "by audits", "by offload", "audits",
             "routing-score AUROC (first model, live)"});
    auto by = [](const json& d, const char* source) -> std::string {
      if (!d.contains("samples_to_detection_by")) return "-";
      const json& v = d["samples_to_detection_by"][source];
      return v.is_null() ? "-" : v.dump();
    };
    for (const auto& d : detection) {
      t.add_row({d.value("split", ""), d.value("mode", ""),
                 std::to_string(d.value("first_unseen_sample", 0)),
                 d.value("detected", false) ? std::to_string(d.value("detected_at_sample", 0)) : "-",
                 d["samples_to_detection"].is_null() ? "not detected"
                                                     : d["samples_to_detection"].dump(),
                 d.value("trigger", "-") +
                     (d.contains("drift_source") ? " (" + d.value("drift_source", "") + ")" : ""),
                 by(d, "audits"), by(d, "offload"), std::to_string(d.value("audits", 0)),
                 d.contains("live_open_set") && d["live_open_set"].is_object()
                     ? fmt_num(d["live_open_set"].value("auroc", 0.0), 3)
                     : "-"});
    }
    report.table(t);
  }
  {
    report.heading("Architecture choice");
    Table t({"split", "latency budget (ms)", "chosen"});
    for (const auto& a : architecture) {
      t.add_row({a.value("split", ""), a["budget_ms"].is_number() ? fmt_num(a["budget_ms"].get<double>(), 3) : "none",
                 a.value("arch", "")});
    }
    report.table(t);
  }
  if (!selection_json.empty()) {
    report.heading("Selection strategies (offline, same uploads budget)");
    Table t({"strategy", "uploaded", "edge accuracy", "unseen-class share of uploads"});
    bool oracle = false;
    for (const auto& r : selection_json) {
      oracle = oracle || r.value("strategy", "") == "label_oracle";
      t.add_row({r.value("strategy", ""), std::to_string(r.value("uploaded", 0)),
                 fmt_percent(r.value("edge_accuracy", 0.0)), fmt_percent(r.value("unseen_share", 0.0))});
    }
    report.table(t);
    if (oracle) {
      report.paragraph(
          "`label_oracle` is not a strategy: it draws its uploads from the unseen-class samples "
          "by their true labels, to show the most any selection could gain at that budget.");
    }
  }
  report.heading("Targets");
  report.paragraph("```\n" + targets.dump(2) + "\n```");
  for (const auto& image : images) report.image(image, image);
  report.save(out / "results.md");
  std::fprintf(stderr, "[scenario] wrote %s/results.{json,md}, timeline.csv, selection.csv and %zu plots\n",
               out.string().c_str(), images.size());
  if (interrupted) {
    throw Error("scenario interrupted by a signal after " + std::to_string(per_split.size()) + " of " +
                std::to_string(splits.size()) + " splits; the finished splits' results are in " +
                out.string());
  }
  return results;
}

}  // namespace edgefm::harness
