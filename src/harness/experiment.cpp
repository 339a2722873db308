#include "harness/experiment.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "cloud/client.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/provenance.h"
#include "common/table.h"
#include "data/dataset.h"
#include "harness/process.h"
#include "edge/runtime.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "net/trace.h"

namespace edgefm::harness {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Thrown when SIGINT/SIGTERM asked the experiment to stop: the finished runs are written.
struct Interrupted : Error {
  Interrupted() : Error("experiment interrupted by a signal") {}
};

void check_stop(const ExperimentOptions& o) {
  if (o.stop != nullptr && o.stop->load()) throw Interrupted();
}

int wait_for_port(ChildProcess& child, const fs::path& port_file, const ExperimentOptions& o,
                  std::chrono::seconds timeout) {
  return wait_for_port_file(child, port_file, timeout, [&o] { check_stop(o); });
}

struct LogPoint {
  double arrival_s = 0.0;
  double latency_ms = 0.0;
  double threshold = 0.0;  // NaN for +-inf
  double est_uplink_bps = 0.0;
};

std::vector<LogPoint> read_log(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error("experiment: cannot read the edge log '" + path.string() + "'");
  std::vector<LogPoint> points;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) throw Error("experiment: malformed line in '" + path.string() + "'");
    LogPoint p;
    p.arrival_s = j.value("arrival_s", 0.0);
    p.latency_ms = j.value("latency_ms", 0.0);
    p.threshold = j.contains("threshold") && j.at("threshold").is_number()
                      ? j.at("threshold").get<double>()
                      : std::nan("");
    p.est_uplink_bps = j.value("est_uplink_bps", 0.0);
    points.push_back(p);
  }
  // The log is in answer order; plots over time want arrival order.
  std::stable_sort(points.begin(), points.end(),
                   [](const LogPoint& a, const LogPoint& b) { return a.arrival_s < b.arrival_s; });
  return points;
}

// Every k-th index so that at most `limit` remain (the last always kept).
std::vector<size_t> thin(size_t n, size_t limit) {
  std::vector<size_t> keep;
  if (n == 0) return keep;
  const size_t step = std::max<size_t>(1, (n + limit - 1) / limit);
  for (size_t i = 0; i < n; i += step) keep.push_back(i);
  if (keep.back() != n - 1) keep.push_back(n - 1);
  return keep;
}

std::string trace_label(const fs::path& path) { return path.stem().string(); }

std::string run_tag(const std::string& trace, const std::string& policy) {
  return trace + "-" + policy;
}

}  // namespace

ExperimentOptions experiment_default_options() { return ExperimentOptions{}; }

double measure_service_time_ms(cloud::OipClient& client, const models::ImageShape& shape,
                               int calls) {
  std::vector<double> server_ms, call_ms;
  std::vector<uint8_t> pixels(static_cast<size_t>(shape.numel()), 0);
  const int warmup = 5;
  for (int i = 0; i < calls + warmup; ++i) {
    cloud::ImageInference r = client.infer_images_u8(pixels.data(), 1, shape);
    if (i < warmup) continue;
    if (r.server.server_us >= 0) server_ms.push_back(r.server.server_us / 1000.0);
    call_ms.push_back(r.call.seconds * 1000.0);
  }
  return server_ms.empty() ? eval::percentile(call_ms, 50) : eval::percentile(server_ms, 50);
}

std::vector<std::string> local_serve_arguments(const std::string& fm,
                                               const std::vector<std::string>& fm_args,
                                               const std::string& port_file,
                                               const std::vector<std::string>& extra,
                                               const std::string& token) {
  std::vector<std::string> args = {"serve"};
  if (fm_args.empty()) {
    args.insert(args.end(), {"--fm", fm});
  } else {
    args.insert(args.end(), fm_args.begin(), fm_args.end());
  }
  args.insert(args.end(), {"--host", "127.0.0.1", "--port", "0", "--port-file", port_file});
  args.insert(args.end(), extra.begin(), extra.end());
  if (!token.empty()) args.insert(args.end(), {"--token", token});
  return args;
}

std::string default_trace_dir() {
  if (const char* env = std::getenv("EDGEFM_TRACE_DIR"); env != nullptr && *env != '\0') return env;
  if (fs::is_directory("data/net-traces")) return "data/net-traces";
  return EDGEFM_DEFAULT_TRACE_DIR;
}

json LappDerivation::to_json() const {
  return {{"l_app_ms", l_app_ms},
          {"knee_offload", knee_offload},
          {"knee_accuracy", knee_accuracy},
          {"best_accuracy", best_accuracy},
          {"all_cloud_ms", all_cloud_ms},
          {"nominal",
           {{"t_edge_ms", nominal.t_edge_ms},
            {"t_cloud_ms", nominal.t_cloud_ms},
            {"rtt_ms", nominal.rtt_ms},
            {"uplink_bps", nominal.uplink_bps},
            {"payload_bytes", nominal.payload_bytes}}}};
}

LappDerivation derive_l_app(const route::CalibrationProfile& profile,
                            const route::LatencyModel& nominal, double accuracy_gap) {
  if (profile.empty()) {
    fail_expected("deriving L_app", "a calibration profile with points", "an empty profile");
  }
  if (!(accuracy_gap >= 0.0)) fail_expected("accuracy gap", ">= 0", std::to_string(accuracy_gap));
  nominal.validate();
  LappDerivation d;
  d.nominal = nominal;
  for (const auto& p : profile.points) d.best_accuracy = std::max(d.best_accuracy, p.accuracy);
  const route::ProfilePoint* knee = nullptr;
  for (const auto& p : profile.points) {
    if (p.accuracy + 1e-12 < d.best_accuracy - accuracy_gap) continue;
    if (knee == nullptr || p.offload_ratio < knee->offload_ratio) knee = &p;
  }
  d.knee_offload = knee->offload_ratio;
  d.knee_accuracy = knee->accuracy;
  d.l_app_ms = nominal.e2e_ms(knee->edge_fraction);
  d.all_cloud_ms = nominal.e2e_ms(0.0);
  return d;
}

json ExperimentRow::to_json() const {
  json j = {{"trace", trace},
            {"policy", policy},
            {"accuracy", accuracy},
            {"latency_ms_mean", latency_ms_mean},
            {"latency_ms_p50", latency_ms_p50},
            {"latency_ms_p95", latency_ms_p95},
            {"latency_ms_p99", latency_ms_p99},
            {"slo_violation_rate", slo_violation_rate},
            {"offload_ratio", offload_ratio},
            {"bytes_up", bytes_up}};
  if (extra.is_object()) {
    for (const auto& [key, value] : extra.items()) j[key] = value;
  }
  return j;
}

std::vector<ExperimentRow> run_experiment(const ExperimentOptions& o) {
  // What to run.
  const std::string program = o.program.empty() ? self_executable() : o.program;
  const fs::path trace_dir = o.trace_dir.empty() ? default_trace_dir() : o.trace_dir;
  std::vector<fs::path> traces;
  if (o.traces.empty()) {
    if (!fs::is_directory(trace_dir)) {
      throw Error("experiment: no trace folder at '" + trace_dir.string() +
                  "' (set --trace-dir or EDGEFM_TRACE_DIR)");
    }
    for (const auto& entry : fs::directory_iterator(trace_dir)) {
      if (entry.is_regular_file() && entry.path().extension() == ".up") traces.push_back(entry.path());
    }
    std::sort(traces.begin(), traces.end());
  } else {
    for (const auto& t : o.traces) {
      fs::path p = t;
      if (!fs::exists(p)) p = trace_dir / t;
      if (!fs::exists(p) && p.extension() != ".up") p = trace_dir / (t + ".up");
      if (!fs::exists(p)) {
        throw Error("experiment: trace '" + t + "' is neither a file nor a trace in '" +
                    trace_dir.string() + "'");
      }
      traces.push_back(p);
    }
  }
  if (traces.empty()) throw Error("experiment: no traces to run");
  std::map<std::string, double> trace_mean_bps;
  std::map<std::string, net::Trace> loaded_traces;
  for (const auto& t : traces) {
    net::Trace trace = net::Trace::load(t);  // fails early on a bad file
    trace_mean_bps[trace_label(t)] = trace.mean_rate_bps();
    loaded_traces.emplace(trace_label(t), std::move(trace));
  }
  if (o.policies.empty()) throw Error("experiment: no policies to run");
  for (const auto& p : o.policies) edge::parse_policy(p);
  if (!(o.rate > 0.0)) fail_expected("experiment --rate", "samples/s > 0", std::to_string(o.rate));
  if (o.delay_ms < 0) fail_expected("experiment --delay-ms", ">= 0", std::to_string(o.delay_ms));

  const fs::path out_dir = o.out_dir;
  const fs::path runs_dir = out_dir / "runs";
  fs::create_directories(runs_dir);

  // The stream length, for progress and the report.
  const data::DatasetDescription description =
      o.data_path.empty() ? data::fashion_mnist_description() : data::load_description(o.data_path);
  size_t stream_size = data::load_dataset(description, data::Part::test).size();
  if (o.samples > 0) stream_size = std::min(stream_size, o.samples);

  const bool needs_profile =
      std::any_of(o.policies.begin(), o.policies.end(),
                  [](const std::string& p) { return p == "fixed" || p == "edgefm"; }) ||
      o.l_app_ms <= 0.0;
  const edge::EdgeModel model = edge::load_edge_model(o.student, needs_profile);
  const models::ImageShape shape = model.encoder->input_shape();

  // The cloud service, for the whole experiment.
  const std::vector<std::string> serve_args =
      local_serve_arguments(o.fm, o.fm_args, (runs_dir / "serve.port").string(),
                            {"--max-batch", std::to_string(o.max_batch)}, o.token);
  fs::remove(runs_dir / "serve.port");
  std::fprintf(stderr, "[experiment] starting the cloud service (%s)\n", o.fm.c_str());
  ChildProcess serve(program, serve_args, (runs_dir / "serve.log").string());
  const int serve_port = wait_for_port(serve, runs_dir / "serve.port", o, std::chrono::seconds(300));
  cloud::ClientOptions client_options = cloud::client_default_options();
  client_options.url = "http://127.0.0.1:" + std::to_string(serve_port);
  client_options.token = o.token;
  cloud::OipClient client(client_options);
  client.wait_until_ready(60.0);

  // The cloud's own service time, measured once, straight to the service (no link).
  const double t_cloud_ms = measure_service_time_ms(client, shape);

  // The nominal network and L_app.
  route::LatencyModel nominal;
  nominal.t_edge_ms = model.t_edge_ms;
  nominal.t_cloud_ms = t_cloud_ms;
  nominal.rtt_ms = 2.0 * static_cast<double>(o.delay_ms);
  nominal.uplink_bps = o.nominal_uplink_mbps * 1e6;
  nominal.payload_bytes = static_cast<double>(shape.numel()) + 300.0;
  LappDerivation derivation;
  derivation.nominal = nominal;
  double l_app_ms = o.l_app_ms;
  if (l_app_ms <= 0.0) {
    derivation = derive_l_app(model.calibration, nominal, o.accuracy_gap);
    // Rounded up so the knee stays feasible after the trip through the command line.
    l_app_ms = std::ceil(derivation.l_app_ms * 100.0) / 100.0;
  }
  std::fprintf(stderr,
               "[experiment] cloud service on port %d, service time %.2f ms; nominal network: RTT "
               "%.0f ms, uplink %.1f Mbit/s; L_app %.2f ms%s\n",
               serve_port, t_cloud_ms, nominal.rtt_ms, o.nominal_uplink_mbps, l_app_ms,
               o.l_app_ms > 0.0
                   ? " (given)"
                   : (" (derived: offload " + fmt_num(derivation.knee_offload, 3) + " at accuracy " +
                      fmt_num(derivation.knee_accuracy, 4) + " vs best " +
                      fmt_num(derivation.best_accuracy, 4) + ")")
                         .c_str());

  // Every (trace, policy).
  std::vector<ExperimentRow> rows;
  const size_t runs_total = traces.size() * o.policies.size();
  Progress progress("experiment", static_cast<int64_t>(runs_total * stream_size), "samples");
  size_t run_index = 0;
  bool interrupted = false;
  try {
  for (const auto& trace_path : traces) {
    const std::string trace = trace_label(trace_path);
    for (const auto& policy : o.policies) {
      check_stop(o);
      ++run_index;
      const std::string tag = run_tag(trace, policy);
      std::fprintf(stderr, "[experiment] run %zu/%zu: trace %s, policy %s\n", run_index, runs_total,
                   trace.c_str(), policy.c_str());
      std::fflush(stderr);

      const fs::path link_port_file = runs_dir / (tag + "-link.port");
      fs::remove(link_port_file);
      ChildProcess link(program,
                        {"link", "--listen", "127.0.0.1:0", "--upstream",
                         "127.0.0.1:" + std::to_string(serve_port), "--uplink-trace",
                         trace_path.string(), "--delay-ms", std::to_string(o.delay_ms),
                         "--port-file", link_port_file.string(), "--json",
                         (runs_dir / (tag + "-link.json")).string(), "--stats-interval-s", "5"},
                        (runs_dir / (tag + "-link.log")).string());
      const int link_port = wait_for_port(link, link_port_file, o, std::chrono::seconds(30));

      const fs::path edge_log = runs_dir / (tag + ".jsonl");
      const fs::path edge_json = runs_dir / (tag + ".json");
      fs::remove(edge_log);
      fs::remove(edge_json);
      std::vector<std::string> edge_args = {
          "edge", "--student", o.student, "--server",
          "http://127.0.0.1:" + std::to_string(link_port), "--policy", policy, "--l-app-ms",
          fmt_num(l_app_ms, 6), "--rate", fmt_num(o.rate, 6), "--samples", std::to_string(stream_size),
          "--log", edge_log.string(), "--json", edge_json.string(), "--rtt-ms",
          fmt_num(nominal.rtt_ms, 6), "--uplink-mbps", fmt_num(o.nominal_uplink_mbps, 6),
          "--cloud-ms", fmt_num(t_cloud_ms, 6), "--max-in-flight",
          std::to_string(o.max_in_flight), "--quiet"};
      if (o.cloud_timeout_ms > 0.0) {
        edge_args.insert(edge_args.end(), {"--cloud-timeout-ms", fmt_num(o.cloud_timeout_ms, 6)});
      }
      if (!o.token.empty()) edge_args.insert(edge_args.end(), {"--token", o.token});
      if (!o.split_path.empty()) edge_args.insert(edge_args.end(), {"--split", o.split_path});
      if (!o.data_path.empty()) edge_args.insert(edge_args.end(), {"--data", o.data_path});
      ChildProcess edge(program, edge_args, (runs_dir / (tag + "-edge.log")).string());

      // The replay takes samples / rate; anything far beyond that is a hang.
      const auto run_deadline =
          Clock::now() + std::chrono::seconds(120 + static_cast<int64_t>(
                                                        2.0 * static_cast<double>(stream_size) / o.rate));
      LineCounter lines(edge_log);
      std::optional<int> status;
      while (!(status = edge.poll())) {
        check_stop(o);
        if (!serve.running()) {
          throw Error("the cloud service exited during run " + tag + "; its log ends:\n" +
                      serve.log_tail());
        }
        if (!link.running()) {
          throw Error("the link emulator exited during run " + tag + "; its log ends:\n" +
                      link.log_tail());
        }
        if (Clock::now() > run_deadline) {
          throw Error("run " + tag + " did not finish in time; the edge log ends:\n" +
                      edge.log_tail());
        }
        progress.update(static_cast<int64_t>((run_index - 1) * stream_size +
                                             std::min(lines.count(), stream_size)),
                        {{"trace", trace}, {"policy", policy}});
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      if (*status != 0) {
        throw Error("run " + tag + ": '" + edge.command_line() + "' exited with status " +
                    std::to_string(*status) + "; its log ends:\n" + edge.log_tail());
      }
      link.stop();

      const json summary = read_json_file(edge_json);
      ExperimentRow row;
      row.trace = trace;
      row.policy = policy;
      row.accuracy = json_field<double>(summary, "accuracy", edge_json.string());
      row.latency_ms_mean = json_field<double>(summary, "latency_ms_mean", edge_json.string());
      row.latency_ms_p50 = json_field<double>(summary, "latency_ms_p50", edge_json.string());
      row.latency_ms_p95 = json_field<double>(summary, "latency_ms_p95", edge_json.string());
      row.latency_ms_p99 = json_field<double>(summary, "latency_ms_p99", edge_json.string());
      row.slo_violation_rate = json_field<double>(summary, "slo_violation_rate", edge_json.string());
      row.offload_ratio = json_field<double>(summary, "offload_ratio", edge_json.string());
      row.bytes_up = json_field<int64_t>(summary, "bytes_up", edge_json.string());
      const json counts = summary.value("counts", json::object());
      row.extra = {{"samples", summary.value("samples", 0)},
                   {"edge", counts.value("edge", 0)},
                   {"cloud", counts.value("cloud", 0)},
                   {"fallback", counts.value("fallback", 0)},
                   {"probes", counts.value("probe", 0)},
                   {"l_app_ms", l_app_ms},
                   {"threshold_final", summary.value("threshold_final", json())},
                   {"threshold_searches",
                    summary.value("runtime", json::object()).value("threshold_searches", 0)},
                   {"trace_mean_bps", trace_mean_bps[trace]}};
      const fs::path link_json = runs_dir / (tag + "-link.json");
      if (fs::exists(link_json)) {
        const json l = read_json_file(link_json);
        row.extra["link_bytes_up"] = l.value("bytes_up", 0);
      }
      std::fprintf(stderr,
                   "[experiment] %s / %s: accuracy %.4f, latency mean %.1f ms (p50 %.1f, p95 %.1f, "
                   "p99 %.1f), SLO violations %.2f %%, offload %.2f %%, %lld bytes up\n",
                   trace.c_str(), policy.c_str(), row.accuracy, row.latency_ms_mean,
                   row.latency_ms_p50, row.latency_ms_p95, row.latency_ms_p99,
                   100.0 * row.slo_violation_rate, 100.0 * row.offload_ratio,
                   static_cast<long long>(row.bytes_up));
      std::fflush(stderr);
      rows.push_back(std::move(row));
    }
  }
  } catch (const Interrupted&) {
    // The runs in flight are stopped (their processes with them); the finished ones are kept.
    interrupted = true;
  }
  progress.finish();
  serve.stop();

  // results.json, results.csv
  json rows_json = json::array();
  for (const auto& r : rows) rows_json.push_back(r.to_json());
  write_json_file(out_dir / "results.json", rows_json);
  std::vector<std::vector<eval::CsvCell>> csv_rows;
  for (const auto& r : rows) {
    csv_rows.push_back({r.trace, r.policy, r.accuracy, r.latency_ms_mean, r.latency_ms_p50,
                        r.latency_ms_p95, r.latency_ms_p99, r.slo_violation_rate, r.offload_ratio,
                        r.bytes_up, r.extra.value("samples", 0), r.extra.value("edge", 0),
                        r.extra.value("cloud", 0), r.extra.value("fallback", 0), l_app_ms});
  }
  eval::write_csv(out_dir / "results.csv",
                  {"trace", "policy", "accuracy", "latency_ms_mean", "latency_ms_p50",
                   "latency_ms_p95", "latency_ms_p99", "slo_violation_rate", "offload_ratio",
                   "bytes_up", "samples", "edge", "cloud", "fallback", "l_app_ms"},
                  csv_rows);
  json setup = {{"fm", o.fm},
                {"student", o.student},
                {"student_version", model.version},
                {"traces", json::array()},
                {"policies", o.policies},
                {"samples", stream_size},
                {"rate", o.rate},
                {"delay_ms", o.delay_ms},
                {"l_app_ms", l_app_ms},
                {"l_app_given", o.l_app_ms > 0.0},
                {"t_cloud_ms_measured", t_cloud_ms},
                {"derivation", derivation.to_json()},
                {"runs_finished", rows.size()},
                {"runs_planned", runs_total},
                {"interrupted", interrupted},
                {"provenance", provenance()}};
  for (const auto& t : traces) setup["traces"].push_back(t.string());
  write_json_file(out_dir / "setup.json", setup);

  // Plots.
  std::map<std::string, std::vector<LogPoint>> logs;
  for (const auto& r : rows) logs[run_tag(r.trace, r.policy)] = read_log(runs_dir / (run_tag(r.trace, r.policy) + ".jsonl"));
  std::vector<std::string> images;
  for (const auto& trace_path : traces) {
    const std::string trace = trace_label(trace_path);
    std::vector<eval::Series> cdf;
    for (const auto& policy : o.policies) {
      std::vector<double> latencies;
      for (const auto& p : logs[run_tag(trace, policy)]) latencies.push_back(p.latency_ms);
      std::sort(latencies.begin(), latencies.end());
      eval::Series s{policy, {}, {}};
      for (size_t i : thin(latencies.size(), 400)) {
        s.x.push_back(latencies[i]);
        s.y.push_back(static_cast<double>(i + 1) / static_cast<double>(latencies.size()));
      }
      cdf.push_back(std::move(s));
    }
    const std::string name = "latency_cdf_" + trace + ".png";
    if (eval::plot_lines(out_dir / name, "End-to-end latency CDF, " + trace, "latency (ms)",
                         "fraction of samples", cdf)) {
      images.push_back(name);
    }
  }
  {
    std::vector<eval::Series> series;
    for (const auto& policy : o.policies) {
      std::vector<std::pair<double, double>> points;
      for (const auto& r : rows) {
        if (r.policy == policy) points.push_back({r.latency_ms_mean, r.accuracy});
      }
      std::sort(points.begin(), points.end());
      eval::Series s{policy, {}, {}};
      for (const auto& [x, y] : points) {
        s.x.push_back(x);
        s.y.push_back(y);
      }
      series.push_back(std::move(s));
    }
    if (eval::plot_lines(out_dir / "accuracy_vs_latency.png",
                         "Accuracy vs mean latency (one point per trace)", "mean latency (ms)",
                         "top-1 accuracy", series)) {
      images.push_back("accuracy_vs_latency.png");
    }
  }
  std::string plot_trace = o.plot_trace.empty() ? trace_label(traces.front()) : o.plot_trace;
  if (!loaded_traces.count(plot_trace)) plot_trace = trace_label(traces.front());
  const bool have_edgefm =
      std::find(o.policies.begin(), o.policies.end(), "edgefm") != o.policies.end();
  if (have_edgefm) {
    const auto& points = logs[run_tag(plot_trace, "edgefm")];
    eval::Series threshold{"edgefm threshold", {}, {}};
    eval::Series estimate{"edgefm estimated uplink", {}, {}};
    for (size_t i : thin(points.size(), 1500)) {
      const auto& p = points[i];
      if (std::isfinite(p.threshold)) {
        threshold.x.push_back(p.arrival_s);
        threshold.y.push_back(p.threshold);
      }
      estimate.x.push_back(p.arrival_s);
      estimate.y.push_back(p.est_uplink_bps / 1e6);
    }
    std::vector<eval::Series> threshold_series = {threshold};
    if (std::find(o.policies.begin(), o.policies.end(), "fixed") != o.policies.end()) {
      eval::Series fixed{"fixed threshold", {}, {}};
      const auto& fixed_points = logs[run_tag(plot_trace, "fixed")];
      for (size_t i : thin(fixed_points.size(), 200)) {
        if (!std::isfinite(fixed_points[i].threshold)) continue;
        fixed.x.push_back(fixed_points[i].arrival_s);
        fixed.y.push_back(fixed_points[i].threshold);
      }
      threshold_series.push_back(fixed);
    }
    const std::string threshold_png = "threshold_" + plot_trace + ".png";
    if (eval::plot_lines(out_dir / threshold_png, "Threshold in force over time, " + plot_trace,
                         "time (s)", "threshold (route to edge when score >= it)",
                         threshold_series)) {
      images.push_back(threshold_png);
    }
    // What the trace offered, in 1 s windows, next to what the edge estimated.
    eval::Series offered{"trace capacity (1 s windows)", {}, {}};
    const net::Trace& t = loaded_traces.at(plot_trace);
    const double end_s = points.empty() ? 0.0 : points.back().arrival_s;
    for (int64_t s = 0; static_cast<double>(s) <= end_s; ++s) {
      offered.x.push_back(static_cast<double>(s) + 0.5);
      offered.y.push_back(t.rate_bps(s * 1000, (s + 1) * 1000) / 1e6);
    }
    const std::string bandwidth_png = "bandwidth_" + plot_trace + ".png";
    if (eval::plot_lines(out_dir / bandwidth_png, "Uplink: estimated vs trace, " + plot_trace,
                         "time (s)", "Mbit/s", {estimate, offered})) {
      images.push_back(bandwidth_png);
    }
  }

  // results.md
  Table table({"trace", "policy", "accuracy", "mean ms", "p50 ms", "p95 ms", "p99 ms",
               "SLO viol.", "offload", "bytes up", "fallback"});
  for (const auto& r : rows) {
    table.add_row({r.trace, r.policy, fmt_percent(r.accuracy), fmt_num(r.latency_ms_mean, 1),
                   fmt_num(r.latency_ms_p50, 1), fmt_num(r.latency_ms_p95, 1),
                   fmt_num(r.latency_ms_p99, 1), fmt_percent(r.slo_violation_rate),
                   fmt_percent(r.offload_ratio), std::to_string(r.bytes_up),
                   std::to_string(r.extra.value("fallback", 0))});
  }
  eval::MarkdownReport report("EdgeFM live experiment");
  std::string setup_text =
      "Cloud service (`edgefm serve`, FM `" + o.fm + "`), link emulator (`edgefm link`, one per "
      "run, one-way delay " + std::to_string(o.delay_ms) + " ms) and edge runtime (`edgefm edge`, "
      "student `" + o.student + "`) as separate processes on 127.0.0.1. Stream: the first " +
      std::to_string(stream_size) + " samples of the test set at " + fmt_num(o.rate, 1) +
      " samples/s. Measured cloud service time " + fmt_num(t_cloud_ms, 2) + " ms. L_app = " +
      fmt_num(l_app_ms, 2) + " ms";
  if (o.l_app_ms > 0.0) {
    setup_text += " (given).";
  } else {
    setup_text += " (derived: at the nominal network, RTT " + fmt_num(nominal.rtt_ms, 0) +
                  " ms and uplink " + fmt_num(o.nominal_uplink_mbps, 1) +
                  " Mbit/s, the expected latency of the smallest offload (" +
                  fmt_percent(derivation.knee_offload) + ") whose profile accuracy (" +
                  fmt_percent(derivation.knee_accuracy) + ") is within " +
                  fmt_num(100.0 * o.accuracy_gap, 2) + " points of the best (" +
                  fmt_percent(derivation.best_accuracy) + "); everything offloaded would take " +
                  fmt_num(derivation.all_cloud_ms, 1) + " ms).";
  }
  setup_text += " SLO violation: an answer later than L_app. Offload: samples routed to the "
                "cloud (answered by it or, when it was down or late, by the edge as fallback).";
  report.paragraph(setup_text);
  report.table(table);
  for (const auto& image : images) report.image(image, image);
  report.save(out_dir / "results.md");
  std::fprintf(stderr, "[experiment] wrote %s/results.{json,csv,md} and %zu plots\n",
               out_dir.string().c_str(), images.size());
  if (interrupted) {
    throw Error("experiment interrupted by a signal after " + std::to_string(rows.size()) + " of " +
                std::to_string(runs_total) + " runs; the finished runs' results are in " +
                out_dir.string());
  }
  return rows;
}

}  // namespace edgefm::harness
