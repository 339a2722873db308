// edgefm edge: the edge runtime on a replayed sample stream, against a cloud service.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <functional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/options.h"
#include "cloud/client.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/json_lines.h"
#include "common/progress.h"
#include "common/provenance.h"
#include "common/table.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "customize/select.h"
#include "data/split.h"
#include "edge/classes.h"
#include "edge/drift.h"
#include "edge/endpoint.h"
#include "edge/loop.h"
#include "edge/runtime.h"
#include "edge/stream.h"
#include "edge/updater.h"
#include "route/threshold.h"

namespace edgefm::cli {
namespace {

// Why a request to the cloud failed, in words: "is unreachable (...)", "refuses the token
// (HTTP 401)", "rejects requests (HTTP 400: ...)".
std::string describe_cloud_problem(const cloud::RequestError& e) {
  if (e.no_answer()) return std::string("is unreachable (") + e.what() + ")";
  const std::string status = "HTTP " + std::to_string(e.status());
  if (e.refused()) return "refuses the token (" + status + ")";
  return "rejects requests (" + status +
         (e.server_message().empty() ? "" : ": " + e.server_message()) + ")";
}

// Answers that fell back to the edge, by reason (timeout, unreachable, refused, rejected,
// error, busy, down), with the first detail said for each (the HTTP status and the server's
// message): counted by the answer sink, read by the replay's status lines on another thread.
class FallbackCounts {
 public:
  void add(const edge::Answer& a) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++counts_[a.fallback_reason];
    if (!a.fallback_detail.empty()) details_.emplace(a.fallback_reason, a.fallback_detail);
  }
  std::map<std::string, size_t> counts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return counts_;
  }
  // "unreachable 12, rejected 3 (HTTP 413: request body too large)"
  std::string summary() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string text;
    for (const auto& [reason, count] : counts_) {
      text += (text.empty() ? "" : ", ") + reason + " " + std::to_string(count);
      auto detail = details_.find(reason);
      if (detail != details_.end()) text += " (" + detail->second + ")";
    }
    return text;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, size_t> counts_;
  std::map<std::string, std::string> details_;
};

// A status line when answers fell back to the edge since the last one (and at the end).
void report_fallbacks(const FallbackCounts& fallbacks, size_t& reported, bool final) {
  size_t total = 0;
  for (const auto& entry : fallbacks.counts()) total += entry.second;
  if (total == reported && !(final && total > 0)) return;
  if (final) {
    std::fprintf(stderr, "[edge] %zu answers fell back to the edge (%s)\n", total,
                 fallbacks.summary().c_str());
  } else {
    std::fprintf(stderr, "[edge] %zu more answers fell back to the edge; so far: %s\n",
                 total - reported, fallbacks.summary().c_str());
  }
  reported = total;
}

// HOST:PORT with a port in 0..65535 (0: any free port).
CLI::Validator host_port() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        const size_t colon = value.rfind(':');
        const std::string port = colon == std::string::npos ? "" : value.substr(colon + 1);
        const bool digits = !port.empty() && port.size() <= 5 &&
                            std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (colon == 0 || colon == std::string::npos || !digits || std::stoi(port) > 65535) {
          return "expected HOST:PORT such as 127.0.0.1:8080 (port 0: any free one), got '" + value + "'";
        }
        return "";
      },
      "HOST:PORT");
}

CLI::Validator http_url() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        for (const char* scheme : {"http://", "https://"}) {
          if (value.rfind(scheme, 0) == 0 && value.size() > std::string(scheme).size()) return "";
        }
        return "expected a URL such as http://HOST:PORT, got '" + value + "'";
      },
      "URL");
}

struct EdgeCommandOptions {
  std::string student;
  std::string server = "http://127.0.0.1:8000";
  std::string token;
  std::string artifact_key_file;
  std::string ca_cert;  // https:// servers: trusted certificates (PEM)
  std::string policy = "edgefm";
  double l_app_ms = route::kDefaultLAppMs;
  double threshold = std::numeric_limits<double>::quiet_NaN();
  double rate = 100.0;
  size_t samples = 0;
  std::string data_path;
  std::string images, labels;
  std::string input;  // unlabelled: a folder of sample files, or "-" for paths on stdin
  std::string listen;     // HOST:PORT: serve applications' samples over OIP instead of a stream
  std::string port_file;  // --listen: the bound port is written here
  std::string split_path;
  std::string log_path;
  std::string json_path;
  int max_in_flight = 32;
  double cloud_timeout_ms = 0.0;
  double timeout_factor = 10.0;
  double nominal_rtt_ms = route::kDefaultRttMs;
  double nominal_uplink_mbps = route::kDefaultUplinkMbps;
  double nominal_cloud_ms = route::kDefaultCloudMs;
  double research_step = 0.10;
  double probe_interval_ms = 1000.0;
  bool quiet = false;
  bool require_cloud = false;  // a cloud that cannot be used is an error, not a fallback
  // Audits and the cost cap.
  double audit_fraction = 0.0;
  double audit_per_minute = 120.0;
  double cloud_budget = 0.0;
  // Continuous customization (on with --state).
  std::string state_dir;
  std::string device = "edge";
  std::string events_path;
  std::string upload_strategy = "margin_diversity";
  float upload_threshold = 0.1f;
  bool upload_routed = false;
  double upload_per_minute = 120.0;
  double upload_kbps = 128.0;
  edge::DriftOptions drift = edge::drift_default_options();
  double drift_upload_s = 30.0;
  bool no_offload_drift = false;
  double offload_rise = 0.3;
  double offload_threshold = 15.0;
  bool no_jobs = false;
  std::string job_path;
  std::string profile_path;
  double latency_budget_ms = 0.0;
  int job_epochs = 0;
  size_t job_min_new = 200;
  size_t uploads_trigger = 0;
  double update_poll_s = 1.0;
  double drain_s = 0.0;
};


// The replayed stream: --input DIR (unlabelled), --images/--labels, or the data set's test part.
data::Dataset load_stream_dataset(const EdgeCommandOptions& o, const data::SampleSpec& spec) {
  if (!o.input.empty()) {
    if (!o.images.empty() || !o.labels.empty() || !o.data_path.empty()) {
      throw Error("--input takes the place of --data and --images/--labels: give one stream");
    }
    return data::load_unlabelled_folder(o.input, spec, /*skip_bad=*/true);
  }
  const data::DatasetDescription description =
      o.data_path.empty() ? data::fashion_mnist_description() : data::load_description(o.data_path);
  if (!o.images.empty() || !o.labels.empty()) {
    if (o.images.empty() || o.labels.empty()) {
      throw Error("--images and --labels go together: an IDX image file and its label file");
    }
    return data::load_idx_pair(o.images, o.labels, description.class_names, "idx");
  }
  return data::load_dataset(description, data::Part::test);
}

json threshold_json(double t) {
  if (std::isinf(t)) return t < 0 ? "-inf" : "+inf";
  return t;
}

// The body of every customization job: --job FILE, or built from --profile and the budget.
json job_request(const EdgeCommandOptions& o) {
  if (!o.job_path.empty()) {
    json request = read_json_file(o.job_path);
    if (!request.is_object()) {
      fail_expected("job request '" + o.job_path + "'", "a JSON object", request.type_name());
    }
    return request;
  }
  if (o.profile_path.empty()) {
    throw Error("edge --state: customization jobs need the device profile (--profile FILE from "
                "`edgefm profile`) or a whole job request (--job FILE); --no-jobs uploads only");
  }
  json request = {{"profile", read_json_file(o.profile_path)}};
  if (o.latency_budget_ms > 0.0) request["budget"] = {{"latency_ms", o.latency_budget_ms}};
  if (o.job_epochs > 0) request["epochs"] = o.job_epochs;
  return request;
}

// A model version as the customization service numbers them ("3"); 0 when it is not one.
int numeric_version(const std::string& version) {
  if (version.empty() || version.size() > 9 ||
      !std::all_of(version.begin(), version.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  return std::stoi(version);
}

// JSON lines, written from several threads; appended to, so a restart keeps earlier events.
using EventLog = JsonLinesLog;

// --listen: serves the applications' requests through the runtime until SIGINT/SIGTERM,
// calling `tick` every second (class reloads, status lines).
void serve_applications(const EdgeCommandOptions& o, edge::EdgeRuntime& runtime,
                        std::atomic<edge::EdgeEndpoint*>& endpoint_slot,
                        const std::function<void()>& tick) {
  edge::EndpointOptions e;
  const size_t colon = o.listen.rfind(':');
  e.host = o.listen.substr(0, colon);
  e.port = std::stoi(o.listen.substr(colon + 1));
  edge::EdgeEndpoint endpoint(runtime, e);
  endpoint_slot = &endpoint;
  if (!o.port_file.empty()) write_text_file(o.port_file, std::to_string(endpoint.port()) + "\n");
  std::fprintf(stderr, "[edge] listening on %s: POST /v2/models/%s/infer, /v2/health/*, /metrics "
               "(stop with Ctrl-C)\n", endpoint.url().c_str(), e.model_name.c_str());
  std::fflush(stderr);
  while (!StopSignals::flag().load()) {
    for (int i = 0; i < 10 && !StopSignals::flag().load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    tick();
  }
  endpoint.stop();  // answers the requests in flight
  runtime.drain();
  endpoint_slot = nullptr;
  std::fprintf(stderr, "[edge] stopped listening\n");
}

void run_edge(const EdgeCommandOptions& o) {
  if (o.quiet) Progress::set_quiet(true);
  edge::RuntimeOptions options = edge::runtime_default_options();
  options.policy = edge::parse_policy(o.policy);
  options.l_app_ms = o.l_app_ms;
  options.fixed_threshold = o.threshold;
  options.client.url = o.server;
  options.client.token = o.token;
  options.client.ca_cert_file = o.ca_cert;
  options.client.artifact_key = read_artifact_key(o.artifact_key_file);
  options.max_in_flight = o.max_in_flight;
  options.cloud_timeout_ms = o.cloud_timeout_ms;
  options.timeout_factor = o.timeout_factor;
  options.estimator.nominal_rtt_ms = o.nominal_rtt_ms;
  options.estimator.nominal_uplink_bps = o.nominal_uplink_mbps * 1e6;
  options.nominal_cloud_ms = o.nominal_cloud_ms;
  options.research_step = o.research_step;
  options.probe_interval_ms = o.probe_interval_ms;
  options.audit_fraction = o.audit_fraction;
  options.audit_per_minute = o.audit_per_minute;
  options.cloud_queries_per_minute = o.cloud_budget;

  edge::EdgeModel model = edge::load_edge_model(o.student, options.policy == edge::Policy::edgefm ||
                                                              (options.policy == edge::Policy::fixed &&
                                                               std::isnan(o.threshold)));
  const std::string model_version = model.version;
  const data::SampleSpec spec = model.encoder->spec();
  // From standard input the stream is live: answers go to stdout as JSON lines, the summary
  // to stderr. With --listen the samples are the applications' requests.
  const bool from_stdin = o.input == "-";
  const bool listening = !o.listen.empty();
  std::FILE* report = from_stdin ? stderr : stdout;
  data::Dataset dataset;
  std::vector<size_t> order;
  if (!from_stdin && !listening) {
    dataset = load_stream_dataset(o, spec);
    data::check_same_spec(spec, "the student", dataset.spec, "the stream");
    for (const auto& bad : dataset.skipped) std::fprintf(stderr, "[edge] skipped %s\n", bad.c_str());
    if (o.input.empty()) {
      data::Split split = o.split_path.empty() ? data::default_split() : data::load_split(o.split_path);
      data::check_split(split, static_cast<int>(dataset.class_names.size()));
      order = data::stream_order(dataset, split);
    } else {
      order.resize(dataset.size());
      std::iota(order.begin(), order.end(), size_t{0});
    }
    if (o.samples > 0 && o.samples < order.size()) order.resize(o.samples);
    if (order.empty()) throw Error("edge: the stream has no samples");
  }
  std::mutex files_mutex;
  std::vector<std::string> stdin_files;  // path of each sample fed from stdin, by id
  // The cloud's FM must take the student's samples. A cloud that cannot be used is said
  // plainly; the runtime answers from the edge until it can (--require-cloud: an error).
  if (options.policy != edge::Policy::edge_only) {
    try {
      cloud::OipClient client(options.client);
      const json meta = client.model_metadata(options.client.image_model);
      const json params = meta.value("parameters", json::object());
      if (params.contains("sample_spec")) {
        data::check_same_spec(data::spec_from_json(params.at("sample_spec"), "the cloud's sample spec"),
                              "the cloud's FM at " + o.server, spec, "the student");
      }
    } catch (const cloud::RequestError& e) {
      const std::string problem = "the cloud at " + o.server + " " + describe_cloud_problem(e);
      if (o.require_cloud) throw Error(problem + " (--require-cloud)");
      std::fprintf(stderr, "[edge] %s; going on: cloud-bound samples fall back to the edge until "
                   "it answers (--require-cloud makes this an error)\n", problem.c_str());
    }
  }
  FallbackCounts fallback_counts;
  size_t fallbacks_reported = 0;  // in the last status line

  // Appended to like the events log: a restarted edge keeps the answers of earlier runs.
  std::unique_ptr<JsonLinesLog> log;
  if (!o.log_path.empty()) log = std::make_unique<JsonLinesLog>(o.log_path);
  std::vector<edge::Answer> answers;  // a replay's, for its summary (not kept when listening)
  answers.reserve(order.size());
  std::atomic<edge::EdgeEndpoint*> endpoint{nullptr};
  auto sink = [&](const edge::Answer& a) {
    if (edge::EdgeEndpoint* e = endpoint.load()) {
      e->on_answer(a);
    } else {
      answers.push_back(a);
    }
    if (a.route == edge::AnswerRoute::fallback) fallback_counts.add(a);
    if (!log && !from_stdin) return;
    json line = edge::answer_to_json(a);
    if (from_stdin) {
      std::lock_guard<std::mutex> lock(files_mutex);
      line["file"] = a.id < stdin_files.size() ? stdin_files[a.id] : "";
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    } else if (a.id < order.size() && !dataset.files.empty()) {
      line["file"] = dataset.files[order[a.id]];
    }
    if (log) log->write(line);
  };

  // Continuous customization: the upload loop, model updates, runtime classes.
  const bool customizing = !o.state_dir.empty();
  const std::filesystem::path state(o.state_dir);
  EventLog events(o.events_path.empty() && customizing ? (state / "events.jsonl").string()
                                                         : o.events_path);
  std::unique_ptr<edge::CustomizationLoop> loop;
  std::unique_ptr<edge::ClassOverlayWatcher> classes;
  std::optional<edge::ClassOverlay> overlay;
  if (customizing) {
    std::filesystem::create_directories(state);
    edge::LoopOptions l = edge::loop_default_options();
    l.device = o.device;
    l.queue_path = state / "uploads.sqlite";
    l.client = options.client;
    l.selector.strategy = customize::parse_selection_strategy(o.upload_strategy);
    l.selector.upload_threshold = o.upload_threshold;
    l.upload_routed = o.upload_routed;
    l.selector.samples_per_minute = o.upload_per_minute;
    l.selector.uplink_kbps = o.upload_kbps;
    l.drift = o.drift;
    l.drift_upload_s = o.drift_upload_s;
    l.offload_drift = !o.no_offload_drift;
    l.offload_rise = o.offload_rise;
    l.offload_detector.threshold = o.offload_threshold;
    l.jobs = !o.no_jobs;
    if (l.jobs) l.job_request = job_request(o);
    l.job_min_new = o.job_min_new;
    l.uploads_trigger = o.uploads_trigger;
    loop = std::make_unique<edge::CustomizationLoop>(
        l, model.encoder->input_shape(), model.encoder->embedding_dim(),
        [&events](const json& e) { events.write(e); });
    options.observer = [&loop](const edge::EdgeObservation& obs) { loop->observe(obs); };
    options.on_audit = [&loop](const edge::AuditResult& a) { loop->audited(a); };
    classes = std::make_unique<edge::ClassOverlayWatcher>(state / "classes.json");
    overlay = classes->poll();
    if (overlay) model.pool = edge::apply_class_overlay(model.pool, *overlay);
  } else if (o.audit_fraction > 0.0) {
    // Audits without the loop: only counted (runtime statistics and the events file).
    options.on_audit = [&events](const edge::AuditResult& a) {
      events.write({{"t_s", a.t_s}, {"event", "audit"}, {"id", a.id}, {"agree", a.agree},
                    {"edge", a.edge_prediction}, {"cloud", a.cloud_prediction}});
    };
  }

  StopSignals signals;

  const models::TextPool base_pool = model.pool;
  edge::EdgeRuntime runtime(std::move(model), options, sink);
  std::mutex pool_mutex;  // base_pool of the model in force, and the overlay
  models::TextPool model_pool = base_pool;
  std::unique_ptr<edge::ModelUpdater> updater;
  if (customizing && o.update_poll_s > 0.0) {
    edge::UpdaterOptions u;
    u.client = options.client;
    u.device = o.device;
    u.dir = state / "models";
    u.poll_s = o.update_poll_s;
    u.expected_input = runtime.model()->encoder->input_shape();
    u.expected_dim = runtime.model()->encoder->embedding_dim();
    updater = std::make_unique<edge::ModelUpdater>(
        u, numeric_version(model_version),
        [&](edge::EdgeModel next, const json& metadata) {
          const std::string version = next.version;
          {
            std::lock_guard<std::mutex> lock(pool_mutex);
            model_pool = next.pool;
            if (overlay) next.pool = edge::apply_class_overlay(next.pool, *overlay);
          }
          runtime.swap_model(std::move(next));
          loop->model_installed(version);
          events.write({{"t_s", std::chrono::duration<double>(edge::Clock::now() -
                                                              runtime.start_time())
                                    .count()},
                        {"event", "model_swapped"},
                        {"version", version},
                        {"arch", metadata.value("arch", "")}});
        },
        [&](const std::string& line) {
          std::fprintf(stderr, "[edge] %s\n", line.c_str());
          events.write({{"t_s", std::chrono::duration<double>(edge::Clock::now() -
                                                              runtime.start_time())
                                    .count()},
                        {"event", "updater"},
                        {"message", line}});
        });
    updater->start();
  }
  // Runtime classes: `edgefm classes add/remove` rewrites the overlay; the next sample uses it.
  std::string classes_error;
  auto reload_classes = [&] {
    if (!classes) return;
    std::optional<edge::ClassOverlay> next = classes->poll();
    if (!next) {
      if (!classes->last_error().empty() && classes->last_error() != classes_error) {
        classes_error = classes->last_error();
        std::fprintf(stderr, "[edge] classes file ignored, keeping the pool: %s\n",
                     classes_error.c_str());
      }
      return;
    }
    try {
      std::lock_guard<std::mutex> lock(pool_mutex);
      runtime.set_pool(edge::apply_class_overlay(model_pool, *next));
      overlay = std::move(next);
      events.write({{"t_s", std::chrono::duration<double>(edge::Clock::now() -
                                                          runtime.start_time())
                                .count()},
                    {"event", "classes"},
                    {"overlay", overlay->to_json()}});
      std::fprintf(stderr, "[edge] class pool now has %zu classes\n",
                   runtime.model()->pool.size());
    } catch (const Error& e) {
      std::fprintf(stderr, "[edge] classes file rejected, keeping the pool: %s\n", e.what());
    }
  };
  {
    edge::RuntimeStats s = runtime.stats();
    std::fprintf(stderr,
                 "[edge] %s: policy %s, L_app %.1f ms, cloud %s (timeout %.0f ms), threshold %s, "
                 "%s, samples: %s\n",
                 model_version.c_str(), o.policy.c_str(), o.l_app_ms, o.server.c_str(),
                 runtime.cloud_timeout_ms(), threshold_json(s.threshold).dump().c_str(),
                 listening    ? "applications' requests"
                 : from_stdin ? "sample files named on standard input"
                              : (std::to_string(order.size()) + " samples at " +
                                 std::to_string(o.rate) + "/s").c_str(),
                 spec.describe().c_str());
    std::fflush(stderr);
  }
  if (listening) {
    serve_applications(o, runtime, endpoint, [&] {
      reload_classes();
      report_fallbacks(fallback_counts, fallbacks_reported, false);
    });
  } else if (from_stdin) {
    const size_t fed = edge::feed_paths(
        runtime, std::cin, spec, &StopSignals::flag(),
        [&](uint64_t id, const std::string& path) {
          std::lock_guard<std::mutex> lock(files_mutex);
          stdin_files.resize(id + 1);
          stdin_files[id] = path;
          if (id % 20 == 19) reload_classes();
        },
        [](const std::string& bad) { std::fprintf(stderr, "[edge] skipped %s\n", bad.c_str()); });
    if (fed == 0) throw Error("edge: no sample file could be read from standard input");
  }
  Progress progress("edge " + o.policy, static_cast<int64_t>(order.size()), "samples");
  const size_t fed = from_stdin || listening ? order.size() : edge::replay(runtime, dataset, order, o.rate, &StopSignals::flag(), [&](size_t done) {
    if (done % 20 == 0) reload_classes();
    if (done % 50 == 0) {
      report_fallbacks(fallback_counts, fallbacks_reported, false);
      edge::RuntimeStats s = runtime.stats();
      char bw[32];
      std::snprintf(bw, sizeof bw, "%.2f Mbit/s", s.network.uplink_bps / 1e6);
      progress.update(static_cast<int64_t>(done),
                      {{"cloud", std::to_string(s.cloud)},
                       {"fallback", std::to_string(s.fallback)},
                       {"thre", threshold_json(s.threshold).dump()},
                       {"bw", bw}});
    }
  });
  runtime.drain();
  if (loop && o.drain_s > 0.0 && !loop->flush(o.drain_s)) {
    std::fprintf(stderr, "[edge] uploads still queued after %.0f s; they stay in %s\n", o.drain_s,
                 (state / "uploads.sqlite").string().c_str());
  }
  if (updater) updater->stop();
  if (loop) loop->stop();
  edge::RuntimeStats stats = runtime.stats();
  progress.finish({{"cloud", std::to_string(stats.cloud)},
                   {"fallback", std::to_string(stats.fallback)}});
  if (fed < order.size()) {
    std::fprintf(stderr, "[edge] stopped by a signal after %zu of %zu samples\n", fed, order.size());
  }

  const std::map<std::string, size_t> fallbacks = fallback_counts.counts();
  report_fallbacks(fallback_counts, fallbacks_reported, true);
  if (listening) {
    std::fprintf(stderr, "[edge] answered %lld requests' samples: edge %lld, cloud %lld, fallback %lld, "
                 "budget %lld\n", static_cast<long long>(stats.answered),
                 static_cast<long long>(stats.edge), static_cast<long long>(stats.cloud),
                 static_cast<long long>(stats.fallback), static_cast<long long>(stats.budget));
  }
  // A replay is summarized from its answers; a listening edge keeps none (it may run for
  // months), so its report is the runtime's counts.
  edge::StreamSummary summary;
  if (!listening) summary = edge::summarize_answers(answers, o.l_app_ms, stats.bytes_up);
  Table table({"route", "samples", "accuracy"});
  const char* names[edge::kAnswerRoutes] = {"edge", "cloud", "fallback", "budget"};
  const size_t counts[edge::kAnswerRoutes] = {summary.edge, summary.cloud, summary.fallback,
                                              summary.budget};
  for (int r = 0; r < edge::kAnswerRoutes; ++r) {
    table.add_row({names[r], std::to_string(counts[r]),
                   counts[r] ? fmt_percent(summary.accuracy_by_route[r]) : "-"});
  }
  table.add_row({"all", std::to_string(summary.samples),
                 summary.with_truth ? fmt_percent(summary.accuracy) : "- (no labels)"});
  if (!listening) {  // a replay's summary
    table.print(from_stdin ? std::cerr : std::cout);
    std::fprintf(report, "latency ms: mean %.2f  p50 %.2f  p95 %.2f  p99 %.2f  max %.2f\n",
                summary.latency.mean_ms, summary.latency.p50_ms, summary.latency.p95_ms,
                summary.latency.p99_ms, summary.latency.max_ms);
    std::fprintf(report, "slo violations (> %.1f ms): %s   offload: %s   bytes up: %lld   threshold searches: "
                "%lld   final estimate: rtt %.1f ms, uplink %.3f Mbit/s\n",
                o.l_app_ms, fmt_percent(summary.slo_violation_rate).c_str(),
                fmt_percent(summary.offload_ratio).c_str(), static_cast<long long>(stats.bytes_up),
                static_cast<long long>(stats.threshold_searches), stats.network.rtt_ms,
                stats.network.uplink_bps / 1e6);
  }
  std::fflush(stdout);

  if (!o.json_path.empty()) {
    json result = listening ? json{{"samples", stats.answered},
                                   {"counts", {{"edge", stats.edge},
                                               {"cloud", stats.cloud},
                                               {"fallback", stats.fallback},
                                               {"budget", stats.budget}}},
                                   {"bytes_up", stats.bytes_up},
                                   {"listen", o.listen}}
                            : summary.to_json();
    json threshold_events = json::array();
    for (const auto& e : runtime.threshold_events()) threshold_events.push_back(e.to_json());
    result["policy"] = o.policy;
    result["student"] = o.student;
    result["model_version"] = model_version;
    result["server"] = o.server;
    result["rate"] = o.rate;
    result["samples_requested"] = order.size();
    result["cloud_timeout_ms"] = runtime.cloud_timeout_ms();
    result["threshold_final"] = threshold_json(stats.threshold);
    result["runtime"] = stats.to_json();
    result["threshold_events"] = threshold_events;
    if (loop) result["customization"] = loop->stats().to_json();
    result["nominal"] = {{"rtt_ms", o.nominal_rtt_ms},
                         {"uplink_bps", o.nominal_uplink_mbps * 1e6},
                         {"cloud_ms", o.nominal_cloud_ms}};
    result["fallback_reasons"] = fallbacks;
    result["provenance"] = provenance();
    write_json_file(o.json_path, result);
  }
  if (o.require_cloud) {
    size_t unusable = 0;
    for (const char* reason : {"unreachable", "refused", "rejected", "error"}) {
      unusable += fallbacks.count(reason) ? fallbacks.at(reason) : 0;
    }
    if (unusable > 0) {
      throw Error(std::to_string(unusable) + " answers fell back to the edge because the cloud " +
                  "could not be used (" + fallback_counts.summary() + "; --require-cloud)");
    }
  }
}

}  // namespace

void add_edge_command(CLI::App& app) {
  auto options = std::make_shared<EdgeCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "edge",
      "Run the edge runtime on a replayed sample stream: the student answers what it is sure\n"
      "of (score >= threshold), the cloud FM (--server, through `edgefm link` for a cellular\n"
      "path) answers the rest; a cloud that is down or later than the timeout is answered by\n"
      "the student and marked 'fallback'. The edgefm policy re-searches the threshold as its\n"
      "own estimate of RTT and uplink bandwidth moves. Prints accuracy, latency percentiles,\n"
      "SLO violations and offload; fields of --json and --log in docs/edge.md.");
  command->add_option("--student", options->student,
                      "student artifact from `edgefm customize` (model, pool, score, "
                      "calibration profile)")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("--server", options->server,
                      "URL of the cloud service (or of `edgefm link` in front of it)")
      ->capture_default_str()
      ->check(http_url());
  command->add_flag("--require-cloud", options->require_cloud,
                    "stop with an error when the cloud cannot be used: unreachable at start-up, "
                    "refusing the token, or rejecting requests (default: say so and answer from "
                    "the edge)");
  command->add_option("--token", options->token, "bearer token of the cloud service");
  command->add_option("--ca-cert", options->ca_cert,
                      "with an https:// --server: trust the certificates in this PEM file "
                      "(default: the system's); the server's certificate is always verified")
      ->check(CLI::ExistingFile);
  command->add_option("--artifact-key-file", options->artifact_key_file,
                      "install only new models whose metadata is signed with the secret in this "
                      "file (the one `serve --artifact-key-file` signs with); unsigned or altered "
                      "artifacts are refused and the current model keeps serving");
  command->add_option("--policy", options->policy,
                      "edge-only | cloud-only | fixed (--threshold, or searched once at the "
                      "nominal network) | edgefm (network-aware threshold)")
      ->capture_default_str()
      ->check(CLI::IsMember(edge::policy_names()));
  command->add_option("--l-app-ms", options->l_app_ms,
                      "the application's latency budget L_app (ms): the threshold search keeps "
                      "the expected end-to-end latency within it; answers later than it count as "
                      "SLO violations")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--threshold", options->threshold,
                      "fixed policy: route to the edge when score >= this (default: searched once "
                      "from the profile at the nominal network)")
      ->check(any_number());
  command->add_option("--rate", options->rate,
                      "arrival rate of the stream in samples/s (0: as fast as the edge goes)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--samples", options->samples, "replay only the first N samples (0: all)")
      ->capture_default_str();
  command->add_option("--data", options->data_path,
                      "data set description JSON (default: Fashion-MNIST from Debian); the "
                      "stream is its test part");
  command->add_option("--images", options->images,
                      "stream an IDX image file instead (with --labels; class names from --data)")
      ->check(CLI::ExistingFile);
  command->add_option("--labels", options->labels, "IDX label file of --images")
      ->check(CLI::ExistingFile);
  command->add_option("--input", options->input,
                      "unlabelled samples instead: a folder of sample files (PNG, JPEG, WAV, ... "
                      "as the student's spec says; replayed at --rate in path order), or '-' "
                      "for a live stream of file paths on standard input, one a line (answers "
                      "go to stdout as JSON lines, the summary to stderr)");
  CLI::Option* listen =
      command->add_option("--listen", options->listen,
                          "serve applications on this device instead of replaying a stream: the "
                          "Open Inference Protocol at HOST:PORT (model 'edge'), each sample "
                          "answered by the student or the cloud as in a replay, until Ctrl-C or "
                          "SIGTERM; docs/edge.md")
          ->check(host_port());
  command->add_option("--port-file", options->port_file,
                      "with --listen: write the bound port here (useful with port 0)")
      ->needs(listen);
  command->add_option("--split", options->split_path,
                      "split/schedule JSON (configs/split-*.json): stream order 'shuffled' or "
                      "'shift' (seen classes first); default: shuffled, seed 7")
      ->check(CLI::ExistingFile);
  command->add_option("--log", options->log_path,
                      "per-sample JSON lines: id, arrival_s, finish_s, latency_ms, route, "
                      "prediction, truth, correct, score, threshold, bytes_sent, est_uplink_bps, "
                      "est_rtt_ms, ...; appended to, never truncated (a restart keeps earlier "
                      "runs' lines)");
  command->add_option("--json", options->json_path,
                      "summary JSON: accuracy, latency_ms_mean/p50/p95/p99, slo_violation_rate, "
                      "offload_ratio, bytes_up, counts per route, threshold events");
  command->add_option("--max-in-flight", options->max_in_flight,
                      "cloud calls in flight at once (one connection each)")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--cloud-timeout-ms", options->cloud_timeout_ms,
                      "answer a cloud-bound sample from the edge (fallback) when the cloud has "
                      "not answered this long after its arrival (0: --timeout-factor x L_app, at "
                      "least 100 ms)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--timeout-factor", options->timeout_factor,
                      "the derived cloud timeout in multiples of L_app")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--rtt-ms", options->nominal_rtt_ms,
                      "network assumed before any measurement: RTT (ms)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--uplink-mbps", options->nominal_uplink_mbps,
                      "network assumed before any measurement: uplink (Mbit/s)")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--cloud-ms", options->nominal_cloud_ms,
                      "cloud service time assumed before any answer (ms)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--research-step", options->research_step,
                      "edgefm: search the threshold again when RTT, uplink or cloud time moved "
                      "by more than this fraction")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--probe-interval-ms", options->probe_interval_ms,
                      "edgefm: when no cloud call happened for this long, send one edge-answered "
                      "sample to the cloud to measure the network (0: never)")
      ->capture_default_str()
      ->check(non_negative_number());
  command->add_option("--audit", options->audit_fraction,
                      "audit sampling: send this share of the samples answered on the edge to "
                      "the cloud as well and compare the FM's answer (drift detection; e.g. "
                      "0.02)")
      ->capture_default_str()
      ->check(number_in(0.0, 1.0));
  command->add_option("--audit-per-minute", options->audit_per_minute,
                      "at most this many audits a minute")
      ->capture_default_str()
      ->check(positive_number());
  command->add_option("--cloud-budget", options->cloud_budget,
                      "cost cap: at most this many cloud calls a minute (routed samples, "
                      "audits, probes); past it the edge answers, marked 'budget' (0: no cap)")
      ->capture_default_str()
      ->check(non_negative_number());
  const std::string loop_group = "Continuous customization (with --state)";
  command->add_option("--state", options->state_dir,
                      "state folder of this edge: turns on selective upload (durable queue "
                      "uploads.sqlite), drift detection, customization jobs, model updates "
                      "(models/) and runtime classes (classes.json, see `edgefm classes`)")
      ->group(loop_group);
  command->add_option("--device-name", options->device,
                      "this edge's name on the customization service")
      ->capture_default_str()
      ->group(loop_group);
  command->add_option("--events", options->events_path,
                      "JSON lines of what the loop did: audit, drift, uploaded, job_submitted, "
                      "job_done, model_swapped, classes (default: STATE/events.jsonl)")
      ->group(loop_group);
  command->add_option("--upload-strategy", options->upload_strategy,
                      "which candidates to upload: random | lowest_margin | margin_diversity "
                      "(k-center on the edge embeddings)")
      ->capture_default_str()
      ->check(CLI::IsMember(customize::selection_strategy_names()))
      ->group(loop_group);
  command->add_option("--upload-threshold", options->upload_threshold,
                      "upload candidates: samples whose routing score is below this")
      ->capture_default_str()
      ->group(loop_group);
  command->add_flag("--upload-routed", options->upload_routed,
                    "upload candidates: the samples routed to the cloud (the upload threshold "
                    "follows the routing threshold, for scores of any scale)")
      ->group(loop_group);
  command->add_option("--upload-per-minute", options->upload_per_minute,
                      "upload budget in samples a minute")
      ->capture_default_str()
      ->check(positive_number())
      ->group(loop_group);
  command->add_option("--upload-kbps", options->upload_kbps,
                      "upload budget in kbit/s of uplink (uploads never starve cloud queries)")
      ->capture_default_str()
      ->check(positive_number())
      ->group(loop_group);
  command->add_option("--drift-baseline", options->drift.baseline_rate,
                      "edge-FM disagreement on audits expected without drift (CUSUM p0)")
      ->capture_default_str()
      ->group(loop_group)
      ->check(number_in(0.0, 1.0));
  command->add_option("--drift-rate", options->drift.drift_rate,
                      "disagreement that counts as drift (CUSUM p1)")
      ->capture_default_str()
      ->group(loop_group)
      ->check(number_in(0.0, 1.0));
  command->add_option("--drift-threshold", options->drift.threshold,
                      "CUSUM level that declares drift (log-likelihood units)")
      ->capture_default_str()
      ->group(loop_group)
      ->check(positive_number());
  command->add_flag("--no-offload-drift", options->no_offload_drift,
                    "do not watch the routing decisions for drift (by default a CUSUM compares "
                    "the share routed to the cloud with the calibration profile's prediction)")
      ->group(loop_group);
  command->add_option("--offload-rise", options->offload_rise,
                      "offload drift: routed share above the predicted one that counts as drift")
      ->capture_default_str()
      ->check(number_in(0.01, 0.89))
      ->group(loop_group);
  command->add_option("--offload-threshold", options->offload_threshold,
                      "offload drift: CUSUM level that declares drift (log-likelihood units)")
      ->capture_default_str()
      ->check(positive_number())
      ->group(loop_group);
  command->add_option("--drift-upload-s", options->drift_upload_s,
                      "after a drift, every sample is an upload candidate for this long")
      ->capture_default_str()
      ->check(non_negative_number())
      ->group(loop_group);
  command->add_flag("--no-jobs", options->no_jobs,
                    "detect and upload, but never start a customization job")
      ->group(loop_group);
  command->add_option("--job", options->job_path,
                      "the whole job request JSON (docs/customization.md)")
      ->check(CLI::ExistingFile)
      ->group(loop_group);
  command->add_option("--profile", options->profile_path,
                      "device profile from `edgefm profile` (the job's lookup table needs it)")
      ->check(CLI::ExistingFile)
      ->group(loop_group);
  command->add_option("--device-budget-ms", options->latency_budget_ms,
                      "the device's batch-1 latency budget for the architecture choice (0: none)")
      ->capture_default_str()
      ->check(non_negative_number())
      ->group(loop_group);
  command->add_option("--job-epochs", options->job_epochs,
                      "distillation epochs of the job (0: the service's default)")
      ->capture_default_str()
      ->check(non_negative_number())
      ->group(loop_group);
  command->add_option("--job-min-new", options->job_min_new,
                      "samples acknowledged since the trigger before the job starts")
      ->capture_default_str()
      ->check(positive_number())
      ->group(loop_group);
  command->add_option("--uploads-trigger", options->uploads_trigger,
                      "also start a job after this many uploads since the last model (0: only "
                      "on drift)")
      ->capture_default_str()
      ->group(loop_group);
  command->add_option("--update-poll-s", options->update_poll_s,
                      "ask the service for a new model this often; verified by SHA-256, "
                      "swapped in between two samples (0: never)")
      ->capture_default_str()
      ->check(non_negative_number())
      ->group(loop_group);
  command->add_option("--drain-s", options->drain_s,
                      "at the end of the stream, wait up to this long for queued uploads")
      ->capture_default_str()
      ->check(non_negative_number())
      ->group(loop_group);
  command->add_flag("--quiet", options->quiet, "no progress lines");
  // A listening edge has no stream of its own.
  for (const char* stream : {"--input", "--images", "--labels", "--data", "--samples", "--split"}) {
    listen->excludes(stream);
  }
  add_config_option(*command);
  command->callback([options] { run_edge(*options); });
}

}  // namespace edgefm::cli
