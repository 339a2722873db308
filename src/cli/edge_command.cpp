// edgefm edge: the edge runtime on a replayed sample stream, against a cloud service.
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/progress.h"
#include "common/table.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/split.h"
#include "edge/runtime.h"
#include "edge/stream.h"

namespace edgefm::cli {
namespace {

struct EdgeCommandOptions {
  std::string student;
  std::string server = "http://127.0.0.1:8000";
  std::string token;
  std::string policy = "edgefm";
  double l_app_ms = 50.0;
  double threshold = std::numeric_limits<double>::quiet_NaN();
  double rate = 100.0;
  size_t samples = 0;
  std::string data_path;
  std::string images, labels;
  std::string split_path;
  std::string log_path;
  std::string json_path;
  int max_in_flight = 32;
  double cloud_timeout_ms = 0.0;
  double timeout_factor = 10.0;
  double nominal_rtt_ms = 80.0;
  double nominal_uplink_mbps = 5.0;
  double nominal_cloud_ms = 5.0;
  double research_step = 0.10;
  double probe_interval_ms = 1000.0;
  bool quiet = false;
};

std::atomic<bool> g_edge_stop{false};
void on_edge_stop_signal(int) { g_edge_stop = true; }

data::Dataset load_stream_dataset(const EdgeCommandOptions& o) {
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

void run_edge(const EdgeCommandOptions& o) {
  if (o.quiet) Progress::set_quiet(true);
  edge::RuntimeOptions options = edge::runtime_default_options();
  options.policy = edge::parse_policy(o.policy);
  options.l_app_ms = o.l_app_ms;
  options.fixed_threshold = o.threshold;
  options.client.url = o.server;
  options.client.token = o.token;
  options.max_in_flight = o.max_in_flight;
  options.cloud_timeout_ms = o.cloud_timeout_ms;
  options.timeout_factor = o.timeout_factor;
  options.estimator.nominal_rtt_ms = o.nominal_rtt_ms;
  options.estimator.nominal_uplink_bps = o.nominal_uplink_mbps * 1e6;
  options.nominal_cloud_ms = o.nominal_cloud_ms;
  options.research_step = o.research_step;
  options.probe_interval_ms = o.probe_interval_ms;

  edge::EdgeModel model = edge::load_edge_model(o.student, options.policy == edge::Policy::edgefm ||
                                                              (options.policy == edge::Policy::fixed &&
                                                               std::isnan(o.threshold)));
  const std::string model_version = model.version;
  data::Dataset dataset = load_stream_dataset(o);
  data::Split split = o.split_path.empty() ? data::default_split() : data::load_split(o.split_path);
  data::check_split(split, static_cast<int>(dataset.class_names.size()));
  std::vector<size_t> order = data::stream_order(dataset, split);
  if (o.samples > 0 && o.samples < order.size()) order.resize(o.samples);
  if (order.empty()) throw Error("edge: the stream has no samples");

  std::unique_ptr<std::ofstream> log;
  if (!o.log_path.empty()) {
    std::filesystem::path log_path(o.log_path);
    if (log_path.has_parent_path()) std::filesystem::create_directories(log_path.parent_path());
    log = std::make_unique<std::ofstream>(o.log_path, std::ios::trunc);
    if (!*log) throw Error("edge: cannot write the log file '" + o.log_path + "'");
  }
  std::vector<edge::Answer> answers;
  answers.reserve(order.size());
  auto sink = [&](const edge::Answer& a) {
    answers.push_back(a);
    if (log) *log << edge::answer_to_json(a).dump() << '\n';
  };

  g_edge_stop = false;
  struct sigaction action{}, old_int{}, old_term{};
  action.sa_handler = on_edge_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);

  edge::EdgeRuntime runtime(std::move(model), options, sink);
  {
    edge::RuntimeStats s = runtime.stats();
    std::fprintf(stderr,
                 "[edge] %s: policy %s, L_app %.1f ms, cloud %s (timeout %.0f ms), threshold %s, "
                 "%zu samples at %g/s\n",
                 model_version.c_str(), o.policy.c_str(), o.l_app_ms, o.server.c_str(),
                 runtime.cloud_timeout_ms(), threshold_json(s.threshold).dump().c_str(),
                 order.size(), o.rate);
    std::fflush(stderr);
  }
  Progress progress("edge " + o.policy, static_cast<int64_t>(order.size()), "samples");
  const size_t fed = edge::replay(runtime, dataset, order, o.rate, &g_edge_stop, [&](size_t done) {
    if (done % 50 == 0) {
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
  edge::RuntimeStats stats = runtime.stats();
  progress.finish({{"cloud", std::to_string(stats.cloud)},
                   {"fallback", std::to_string(stats.fallback)}});
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (log) log->flush();
  if (fed < order.size()) {
    std::fprintf(stderr, "[edge] stopped by a signal after %zu of %zu samples\n", fed, order.size());
  }

  const edge::StreamSummary summary = edge::summarize_answers(answers, o.l_app_ms, stats.bytes_up);
  Table table({"route", "samples", "accuracy"});
  const char* names[3] = {"edge", "cloud", "fallback"};
  const size_t counts[3] = {summary.edge, summary.cloud, summary.fallback};
  for (int r = 0; r < 3; ++r) {
    table.add_row({names[r], std::to_string(counts[r]),
                   counts[r] ? fmt_percent(summary.accuracy_by_route[r]) : "-"});
  }
  table.add_row({"all", std::to_string(summary.samples), fmt_percent(summary.accuracy)});
  table.print(std::cout);
  std::printf("latency ms: mean %.2f  p50 %.2f  p95 %.2f  p99 %.2f  max %.2f\n",
              summary.latency.mean_ms, summary.latency.p50_ms, summary.latency.p95_ms,
              summary.latency.p99_ms, summary.latency.max_ms);
  std::printf("slo violations (> %.1f ms): %s   offload: %s   bytes up: %lld   threshold searches: "
              "%lld   final estimate: rtt %.1f ms, uplink %.3f Mbit/s\n",
              o.l_app_ms, fmt_percent(summary.slo_violation_rate).c_str(),
              fmt_percent(summary.offload_ratio).c_str(), static_cast<long long>(stats.bytes_up),
              static_cast<long long>(stats.threshold_searches), stats.network.rtt_ms,
              stats.network.uplink_bps / 1e6);
  std::fflush(stdout);

  if (!o.json_path.empty()) {
    json result = summary.to_json();
    json events = json::array();
    for (const auto& e : runtime.threshold_events()) events.push_back(e.to_json());
    result["policy"] = o.policy;
    result["student"] = o.student;
    result["model_version"] = model_version;
    result["server"] = o.server;
    result["rate"] = o.rate;
    result["samples_requested"] = order.size();
    result["cloud_timeout_ms"] = runtime.cloud_timeout_ms();
    result["threshold_final"] = threshold_json(stats.threshold);
    result["runtime"] = stats.to_json();
    result["threshold_events"] = events;
    result["nominal"] = {{"rtt_ms", o.nominal_rtt_ms},
                         {"uplink_bps", o.nominal_uplink_mbps * 1e6},
                         {"cloud_ms", o.nominal_cloud_ms}};
    write_json_file(o.json_path, result);
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
      ->capture_default_str();
  command->add_option("--token", options->token, "bearer token of the cloud service");
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
      ->check(CLI::PositiveNumber);
  command->add_option("--threshold", options->threshold,
                      "fixed policy: route to the edge when score >= this (default: searched once "
                      "from the profile at the nominal network)");
  command->add_option("--rate", options->rate,
                      "arrival rate of the stream in samples/s (0: as fast as the edge goes)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
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
  command->add_option("--split", options->split_path,
                      "split/schedule JSON (configs/split-*.json): stream order 'shuffled' or "
                      "'shift' (seen classes first); default: shuffled, seed 7")
      ->check(CLI::ExistingFile);
  command->add_option("--log", options->log_path,
                      "per-sample JSON lines: id, arrival_s, finish_s, latency_ms, route, "
                      "prediction, truth, correct, score, threshold, bytes_sent, est_uplink_bps, "
                      "est_rtt_ms, ...");
  command->add_option("--json", options->json_path,
                      "summary JSON: accuracy, latency_ms_mean/p50/p95/p99, slo_violation_rate, "
                      "offload_ratio, bytes_up, counts per route, threshold events");
  command->add_option("--max-in-flight", options->max_in_flight,
                      "cloud calls in flight at once (one connection each)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--cloud-timeout-ms", options->cloud_timeout_ms,
                      "answer a cloud-bound sample from the edge (fallback) when the cloud has "
                      "not answered this long after its arrival (0: --timeout-factor x L_app, at "
                      "least 100 ms)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command->add_option("--timeout-factor", options->timeout_factor,
                      "the derived cloud timeout in multiples of L_app")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--nominal-rtt-ms", options->nominal_rtt_ms,
                      "network assumed before any measurement: RTT (ms)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command->add_option("--nominal-uplink-mbps", options->nominal_uplink_mbps,
                      "network assumed before any measurement: uplink (Mbit/s)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--nominal-cloud-ms", options->nominal_cloud_ms,
                      "cloud service time assumed before any answer (ms)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command->add_option("--research-step", options->research_step,
                      "edgefm: search the threshold again when RTT, uplink or cloud time moved "
                      "by more than this fraction")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--probe-interval-ms", options->probe_interval_ms,
                      "edgefm: when no cloud call happened for this long, send one edge-answered "
                      "sample to the cloud to measure the network (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  command->add_flag("--quiet", options->quiet, "no progress lines");
  command->callback([options] { run_edge(*options); });
}

}  // namespace edgefm::cli
