#include "harness/fleet.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "cloud/client.h"
#include "cloud/customization_client.h"
#include "common/error.h"
#include "common/json_lines.h"
#include "common/progress.h"
#include "common/provenance.h"
#include "common/table.h"
#include "data/dataset.h"
#include "data/split.h"
#include "edge/runtime.h"
#include "edge/stream.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "harness/experiment.h"
#include "harness/process.h"
#include "net/link.h"
#include "net/trace.h"

namespace edgefm::harness {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::vector<fs::path> resolve_traces(const FleetOptions& o) {
  const fs::path dir = o.trace_dir.empty() ? default_trace_dir() : o.trace_dir;
  std::vector<fs::path> traces;
  if (o.traces.empty()) {
    if (!fs::is_directory(dir)) {
      throw Error("fleet: no trace folder at '" + dir.string() + "' (set --trace-dir or EDGEFM_TRACE_DIR)");
    }
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_regular_file() && entry.path().extension() == ".up") traces.push_back(entry.path());
    }
    std::sort(traces.begin(), traces.end());
    if (traces.empty()) throw Error("fleet: no *.up traces in '" + dir.string() + "'");
    return traces;
  }
  for (const auto& t : o.traces) {
    fs::path p = t;
    if (!fs::exists(p)) p = dir / t;
    if (!fs::exists(p) && p.extension() != ".up") p = dir / (t + ".up");
    if (!fs::exists(p)) {
      throw Error("fleet: trace '" + t + "' is neither a file nor a trace in '" + dir.string() + "'");
    }
    traces.push_back(p);
  }
  return traces;
}

std::string device_name(size_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "device-%03zu", index);
  return name;
}

// One simulated device: its link to the service, its runtime and what came back.
struct Device {
  FleetDeviceRow row;
  fs::path dir;
  std::vector<size_t> order;             // its share of the stream (dataset indices)
  std::unique_ptr<JsonLinesLog> log;     // state folder: answers.jsonl
  std::vector<edge::Answer> answers;     // the sink runs one call at a time per runtime
  std::atomic<size_t> answered{0};
  size_t fed = 0;
  std::string error;                     // what stopped its replay, if anything
  bool submits_job = false;
  json job_record;                       // the job's last record (empty: none)
  std::string job_error;
  // Destroyed first (members go in reverse): the runtime drains into the sink above, then
  // the link closes.
  std::unique_ptr<net::LinkEmulator> link;
  std::unique_ptr<edge::EdgeRuntime> runtime;
};

void check_options(const FleetOptions& o) {
  if (o.devices == 0) fail_expected("fleet --devices", "at least 1 device", "0");
  if (!(o.rate > 0.0)) fail_expected("fleet --rate", "samples/s > 0", std::to_string(o.rate));
  if (!(o.l_app_ms > 0.0)) fail_expected("fleet --l-app-ms", "> 0", std::to_string(o.l_app_ms));
  if (!(o.trace_offset_s >= 0.0)) {
    fail_expected("fleet --trace-offset-s", ">= 0", std::to_string(o.trace_offset_s));
  }
  if (o.delay_ms < 0) fail_expected("fleet --delay-ms", ">= 0", std::to_string(o.delay_ms));
  if (o.max_in_flight < 1) {
    fail_expected("fleet --max-in-flight", ">= 1", std::to_string(o.max_in_flight));
  }
  edge::parse_policy(o.policy);
  if (o.jobs > o.devices) {
    fail_expected("fleet --jobs", "at most --devices (" + std::to_string(o.devices) + ")",
                  std::to_string(o.jobs));
  }
  if (o.jobs > 0 && o.job_uploads == 0) fail_expected("fleet --job-uploads", ">= 1", "0");
  if (o.job_epochs < 1) fail_expected("fleet --job-epochs", ">= 1", std::to_string(o.job_epochs));
}

// A device's customization job: uploads the first samples of its share through its link,
// submits the job and follows it until it ends (or the fleet stops, or `deadline` passes:
// then it is cancelled).
void run_device_job(Device& dev, const data::Dataset& dataset, const cloud::ClientOptions& client,
                    const json& request, size_t uploads, const std::atomic<bool>& stop,
                    Clock::time_point deadline) {
  try {
    cloud::CustomizationClient service(client);
    std::vector<std::string_view> batch;
    for (size_t i = 0; i < uploads && i < dev.order.size(); ++i) {
      batch.emplace_back(reinterpret_cast<const char*>(dataset.sample(dev.order[i])),
                         dataset.sample_size());
    }
    service.upload_samples(dev.row.device, batch, dataset.spec.shape);
    const json submitted = service.submit_job(dev.row.device, request);
    const std::string id = json_field<std::string>(submitted, "id", "job record");
    dev.job_record = submitted;
    for (;;) {
      dev.job_record = service.job(id);
      const std::string state = dev.job_record.value("state", "");
      if (state == "done" || state == "failed" || state == "cancelled") return;
      if (stop.load() || Clock::now() > deadline) {
        dev.job_record = service.cancel_job(id);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  } catch (const std::exception& e) {
    dev.job_error = e.what();
  }
}

// Every device holds up to max_in_flight connections to its link, which holds as many to the
// service, plus its listening socket and its answer log: raise the soft limit on open files
// to what that needs (at most the hard limit), or say up front that it cannot be had.
void ensure_file_limit(const FleetOptions& o) {
  const rlim_t needed =
      static_cast<rlim_t>(o.devices) * static_cast<rlim_t>(3 * o.max_in_flight + 4) + 256;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= needed) return;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
    throw Error("fleet: " + std::to_string(o.devices) + " devices with --max-in-flight " +
                std::to_string(o.max_in_flight) + " need about " + std::to_string(needed) +
                " open files, more than this process may open (" +
                std::to_string(limit.rlim_max) + "); use fewer devices or raise `ulimit -Hn`");
  }
  limit.rlim_cur = needed;
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

FleetOptions fleet_default_options() { return FleetOptions{}; }

json FleetDeviceRow::to_json() const {
  json j = {{"device", device},
          {"trace", trace},
          {"trace_offset_s", trace_offset_s},
          {"samples", samples},
          {"answers", answers},
          {"lost", lost},
          {"accuracy", accuracy},
          {"offload_ratio", offload_ratio},
          {"latency_ms_mean", latency_ms_mean},
          {"latency_ms_p50", latency_ms_p50},
          {"latency_ms_p99", latency_ms_p99},
          {"slo_violation_rate", slo_violation_rate},
          {"edge", edge},
          {"cloud", cloud},
          {"fallback", fallback},
          {"budget", budget},
          {"cloud_calls", cloud_calls},
          {"bytes_up", bytes_up},
          {"threshold_final", std::isfinite(threshold_final)
                                  ? json(threshold_final)
                                  : json(threshold_final < 0 ? "-inf" : "+inf")}};
  if (!job_state.empty()) {
    j["job_state"] = job_state;
    j["job_wait_ms"] = job_wait_ms;
    j["job_run_ms"] = job_run_ms;
  }
  return j;
}

json FleetResult::to_json() const {
  json rows_json = json::array();
  for (const auto& r : rows) rows_json.push_back(r.to_json());
  return {{"devices", rows.size()},
          {"samples", samples},
          {"answers", answers},
          {"lost_answers", lost_answers},
          {"duration_s", duration_s},
          {"cloud_requests", cloud_requests},
          {"cloud_requests_per_s", cloud_requests_per_s},
          {"cloud_p50_ms", cloud_p50_ms},
          {"cloud_p99_ms", cloud_p99_ms},
          {"cloud_call_p50_ms", cloud_call_p50_ms},
          {"cloud_call_p99_ms", cloud_call_p99_ms},
          {"latency_ms_p99", latency_ms_p99},
          {"device_p99_max_ms", device_p99_max_ms},
          {"accuracy", accuracy},
          {"offload_ratio", offload_ratio},
          {"slo_violation_rate", slo_violation_rate},
          {"jobs", jobs},
          {"jobs_done", jobs_done},
          {"job_wait_ms_p50", job_wait_ms_p50},
          {"job_wait_ms_max", job_wait_ms_max},
          {"interrupted", interrupted},
          {"rows", rows_json}};
}

namespace {

// Each device's row and the fleet's totals from what the devices answered; a device whose
// replay or job failed sets `failure` (the first one).
FleetResult summarize_fleet(std::vector<std::unique_ptr<Device>>& devices, double l_app_ms,
                            double duration_s, std::string& failure) {
  FleetResult result;
  std::vector<double> server_ms, call_ms, all_latency, job_waits;
  size_t correct = 0, with_truth = 0, offloaded = 0, late = 0;
  for (auto& dev_ptr : devices) {
    Device& dev = *dev_ptr;
    if (!dev.error.empty() && failure.empty()) failure = dev.row.device + ": " + dev.error;
    const edge::RuntimeStats stats = dev.runtime->stats();
    FleetDeviceRow& row = dev.row;
    row.samples = dev.fed;
    std::set<uint64_t> ids;
    for (const auto& a : dev.answers) ids.insert(a.id);
    row.answers = ids.size();
    row.lost = row.samples > row.answers ? row.samples - row.answers : 0;
    row.cloud_calls = stats.cloud_calls;
    row.bytes_up = stats.bytes_up;
    row.threshold_final = stats.threshold;
    if (!dev.answers.empty()) {
      const edge::StreamSummary s = edge::summarize_answers(dev.answers, l_app_ms, stats.bytes_up);
      row.accuracy = s.accuracy;
      row.offload_ratio = s.offload_ratio;
      row.latency_ms_mean = s.latency.mean_ms;
      row.latency_ms_p50 = s.latency.p50_ms;
      row.latency_ms_p99 = s.latency.p99_ms;
      row.slo_violation_rate = s.slo_violation_rate;
      row.edge = s.edge;
      row.cloud = s.cloud;
      row.fallback = s.fallback;
      row.budget = s.budget;
    }
    for (const auto& a : dev.answers) {
      all_latency.push_back(a.latency_ms);
      if (a.route == edge::AnswerRoute::cloud) {
        if (a.server_ms >= 0.0) server_ms.push_back(a.server_ms);
        call_ms.push_back(a.cloud_ms);
      }
      if (a.route == edge::AnswerRoute::cloud || a.route == edge::AnswerRoute::fallback) ++offloaded;
      if (a.latency_ms > l_app_ms) ++late;
      if (!a.truth.empty()) {
        ++with_truth;
        if (a.correct) ++correct;
      }
    }
    if (dev.submits_job) {
      ++result.jobs;
      const json& job = dev.job_record;
      row.job_state = job.is_object() ? job.value("state", "unknown") : "not submitted";
      const double created = job.is_object() ? job.value("created_unix", 0.0) : 0.0;
      const double started = job.is_object() ? job.value("started_unix", 0.0) : 0.0;
      const double finished = job.is_object() ? job.value("finished_unix", 0.0) : 0.0;
      if (created > 0.0 && started >= created) {
        row.job_wait_ms = 1000.0 * (started - created);
        job_waits.push_back(row.job_wait_ms);
      }
      if (started > 0.0 && finished >= started) row.job_run_ms = 1000.0 * (finished - started);
      if (row.job_state == "done") ++result.jobs_done;
      if (!dev.job_error.empty() && failure.empty()) {
        failure = dev.row.device + "'s customization job: " + dev.job_error;
      }
    }
    result.samples += row.samples;
    result.answers += row.answers;
    result.lost_answers += row.lost;
    result.cloud_requests += row.cloud_calls;
    result.device_p99_max_ms = std::max(result.device_p99_max_ms, row.latency_ms_p99);
    result.rows.push_back(row);
  }

  result.duration_s = duration_s;
  result.cloud_requests_per_s =
      result.duration_s > 0.0 ? static_cast<double>(result.cloud_requests) / result.duration_s : 0.0;
  if (!server_ms.empty()) {
    result.cloud_p50_ms = eval::percentile(server_ms, 50);
    result.cloud_p99_ms = eval::percentile(server_ms, 99);
  }
  if (!call_ms.empty()) {
    result.cloud_call_p50_ms = eval::percentile(call_ms, 50);
    result.cloud_call_p99_ms = eval::percentile(call_ms, 99);
  }
  if (!all_latency.empty()) {
    const double n = static_cast<double>(all_latency.size());
    result.latency_ms_p99 = eval::percentile(all_latency, 99);
    result.offload_ratio = static_cast<double>(offloaded) / n;
    result.slo_violation_rate = static_cast<double>(late) / n;
  }
  if (!job_waits.empty()) {
    result.job_wait_ms_p50 = eval::percentile(job_waits, 50);
    result.job_wait_ms_max = *std::max_element(job_waits.begin(), job_waits.end());
  }
  if (with_truth > 0) result.accuracy = static_cast<double>(correct) / static_cast<double>(with_truth);
  return result;
}

// results.json (the totals, the rows, the setup, provenance), results.csv (the rows),
// latency_by_device.png and results.md.
void write_outputs(const FleetOptions& o, const FleetResult& result,
                   const std::vector<fs::path>& trace_paths, size_t per_device, double t_cloud_ms) {
  const fs::path out_dir = o.out_dir;
  // results.json, results.csv
  json results = result.to_json();
  std::vector<std::string> trace_names;
  for (const auto& p : trace_paths) trace_names.push_back(p.string());
  results["setup"] = {{"fm", o.fm},
                      {"student", o.student},
                      {"policy", o.policy},
                      {"samples_per_device", per_device},
                      {"rate", o.rate},
                      {"l_app_ms", o.l_app_ms},
                      {"delay_ms", o.delay_ms},
                      {"trace_offset_s", o.trace_offset_s},
                      {"traces", trace_names},
                      {"max_in_flight", o.max_in_flight},
                      {"max_batch", o.max_batch},
                      {"jobs", o.jobs},
                      {"job_uploads", o.job_uploads},
                      {"job_epochs", o.job_epochs},
                      {"t_cloud_ms_measured", t_cloud_ms},
                      {"link", "in-process (net/link.h), one per device"}};
  results["provenance"] = provenance();
  write_json_file(out_dir / "results.json", results);
  std::vector<std::vector<eval::CsvCell>> csv_rows;
  for (const auto& r : result.rows) {
    csv_rows.push_back({r.device, r.trace, r.trace_offset_s, r.samples, r.answers, r.lost,
                        r.accuracy, r.offload_ratio, r.latency_ms_mean, r.latency_ms_p50,
                        r.latency_ms_p99, r.slo_violation_rate, r.edge, r.cloud, r.fallback,
                        r.budget, r.cloud_calls, r.bytes_up});
  }
  eval::write_csv(out_dir / "results.csv",
                  {"device", "trace", "trace_offset_s", "samples", "answers", "lost", "accuracy",
                   "offload_ratio", "latency_ms_mean", "latency_ms_p50", "latency_ms_p99",
                   "slo_violation_rate", "edge", "cloud", "fallback", "budget", "cloud_calls",
                   "bytes_up"},
                  csv_rows);

  // The plot: each device's p50 and p99 against L_app.
  std::vector<std::string> images;
  {
    eval::Series p50{"p50", {}, {}}, p99{"p99", {}, {}}, budget{"L_app", {}, {}};
    for (size_t i = 0; i < result.rows.size(); ++i) {
      const double x = static_cast<double>(i);
      p50.x.push_back(x);
      p50.y.push_back(result.rows[i].latency_ms_p50);
      p99.x.push_back(x);
      p99.y.push_back(result.rows[i].latency_ms_p99);
    }
    budget.x = {0.0, static_cast<double>(std::max<size_t>(1, result.rows.size()) - 1)};
    budget.y = {o.l_app_ms, o.l_app_ms};
    if (eval::plot_lines(out_dir / "latency_by_device.png",
                         "End-to-end latency per device (" + std::to_string(result.rows.size()) +
                             " devices, one cloud)",
                         "device", "latency (ms)", {p50, p99, budget})) {
      images.push_back("latency_by_device.png");
    }
  }

  // results.md
  eval::MarkdownReport report("EdgeFM fleet benchmark");
  report.paragraph(
      std::to_string(result.rows.size()) + " simulated devices (edge runtimes in one process, "
      "each behind its own in-process link emulator: a bundled uplink trace from its own offset, "
      "one-way delay " + std::to_string(o.delay_ms) + " ms) against one `edgefm serve` (FM `" +
      o.fm + "`). Each device replays " + std::to_string(per_device) + " samples of the test "
      "stream at " + fmt_num(o.rate, 1) + " samples/s with student `" + o.student + "`, policy " +
      o.policy + ", L_app " + fmt_num(o.l_app_ms, 1) + " ms. Cloud p50/p99: the service's own "
      "time per answered request (as it reports it); call p99: as the devices saw it, link "
      "included. Lost: samples without an answer.");
  Table totals({"devices", "answers", "lost", "cloud req/s", "cloud p50 ms", "cloud p99 ms",
                "call p99 ms", "latency p99 ms", "worst device p99 ms", "accuracy", "offload",
                "SLO viol."});
  totals.add_row({std::to_string(result.rows.size()), std::to_string(result.answers),
                  std::to_string(result.lost_answers), fmt_num(result.cloud_requests_per_s, 1),
                  fmt_num(result.cloud_p50_ms, 2), fmt_num(result.cloud_p99_ms, 2),
                  fmt_num(result.cloud_call_p99_ms, 1), fmt_num(result.latency_ms_p99, 1),
                  fmt_num(result.device_p99_max_ms, 1), fmt_percent(result.accuracy),
                  fmt_percent(result.offload_ratio), fmt_percent(result.slo_violation_rate)});
  report.table(totals);
  Table device_table({"device", "trace", "offset s", "answers", "lost", "accuracy", "offload",
                    "p50 ms", "p99 ms", "SLO viol.", "fallback"});
  for (const auto& r : result.rows) {
    device_table.add_row({r.device, r.trace, fmt_num(r.trace_offset_s, 1), std::to_string(r.answers),
                        std::to_string(r.lost), fmt_percent(r.accuracy),
                        fmt_percent(r.offload_ratio), fmt_num(r.latency_ms_p50, 1),
                        fmt_num(r.latency_ms_p99, 1), fmt_percent(r.slo_violation_rate),
                        std::to_string(r.fallback)});
  }
  if (result.jobs > 0) {
    Table jobs({"device", "job", "waited ms", "ran ms"});
    for (const auto& r : result.rows) {
      if (r.job_state.empty()) continue;
      jobs.add_row({r.device, r.job_state, r.job_wait_ms >= 0 ? fmt_num(r.job_wait_ms, 0) : "-",
                    r.job_run_ms >= 0 ? fmt_num(r.job_run_ms, 0) : "-"});
    }
    report.heading("Customization jobs");
    report.paragraph(std::to_string(result.jobs) + " devices each uploaded " +
                     std::to_string(std::min(o.job_uploads, per_device)) +
                     " samples through their link and submitted one job (epochs: " +
                     std::to_string(o.job_epochs) + "); waited: submitted to started, as the "
                     "service recorded it; ran: started to finished.");
    report.table(jobs);
  }
  report.heading("Devices");
  report.table(device_table);
  for (const auto& image : images) report.image(image, image);
  report.save(out_dir / "results.md");
}

}  // namespace

FleetResult run_fleet(const FleetOptions& o) {
  check_options(o);
  ensure_file_limit(o);
  const std::string program = o.program.empty() ? self_executable() : o.program;
  const std::vector<fs::path> trace_paths = resolve_traces(o);
  std::vector<net::Trace> traces;
  for (const auto& p : trace_paths) traces.push_back(net::Trace::load(p));  // fails early

  // The stream and each device's share of it.
  const data::DatasetDescription description =
      o.data_path.empty() ? data::fashion_mnist_description() : data::load_description(o.data_path);
  const data::Dataset dataset = data::load_dataset(description, data::Part::test);
  data::Split split = o.split_path.empty() ? data::default_split() : data::load_split(o.split_path);
  data::check_split(split, static_cast<int>(dataset.class_names.size()));
  const std::vector<size_t> stream = data::stream_order(dataset, split);
  if (stream.empty()) throw Error("fleet: the test stream has no samples");
  const size_t per_device = o.samples > 0 ? o.samples : std::max<size_t>(1, stream.size() / o.devices);

  const bool needs_profile = o.policy == "edgefm" || o.policy == "fixed";
  const edge::EdgeModel probe_model = edge::load_edge_model(o.student, needs_profile);
  data::check_same_spec(probe_model.encoder->spec(), "the student", dataset.spec, "the stream");
  const models::ImageShape shape = probe_model.encoder->input_shape();

  const fs::path out_dir = o.out_dir;
  const fs::path devices_dir = out_dir / "devices";
  // Every run starts from fresh state: the devices' folders and the service's.
  fs::remove_all(devices_dir);
  fs::remove_all(out_dir / "cloud");
  fs::create_directories(devices_dir);

  // The cloud service, with its customization extension; enough connections for every
  // device's workers.
  const fs::path port_file = out_dir / "serve.port";
  fs::remove(port_file);
  const size_t connections = o.devices * static_cast<size_t>(o.max_in_flight + 2) + 64;
  const std::vector<std::string> serve_args = local_serve_arguments(
      o.fm, o.fm_args, port_file.string(),
      {"--max-batch", std::to_string(o.max_batch), "--max-connections", std::to_string(connections),
       "--max-queued-requests", std::to_string(std::max<size_t>(256, connections)),
       "--customization-dir", (out_dir / "cloud").string(), "--json",
       (out_dir / "serve.json").string()},
      o.token);
  std::fprintf(stderr, "[fleet] starting the cloud service (%s)\n", o.fm.c_str());
  ChildProcess serve(program, serve_args, (out_dir / "serve.log").string());
  auto check_stop = [&o] {
    if (o.stop != nullptr && o.stop->load()) throw Error("fleet interrupted by a signal");
  };
  const int serve_port = wait_for_port_file(serve, port_file, std::chrono::seconds(300), check_stop);
  cloud::ClientOptions client_options = cloud::client_default_options();
  client_options.url = "http://127.0.0.1:" + std::to_string(serve_port);
  client_options.token = o.token;
  double t_cloud_ms = 0.0;
  {
    cloud::OipClient client(client_options);
    client.wait_until_ready(60.0);
    t_cloud_ms = measure_service_time_ms(client, shape);
  }

  // Customization jobs: one device profile (this machine's, as `edgefm profile` measures it)
  // and one job request for every job.
  json job_request;
  if (o.jobs > 0) {
    const fs::path spec_file = out_dir / "sample-spec.json";
    const fs::path profile_file = out_dir / "device-profile.json";
    write_json_file(spec_file, data::to_json(dataset.spec));
    std::fprintf(stderr, "[fleet] profiling the edge architectures for the jobs\n");
    ChildProcess profile(program,
                         {"profile", "--json", profile_file.string(), "--repetitions", "20",
                          "--threads", "1", "--spec", spec_file.string()},
                         (out_dir / "profile.log").string());
    const std::optional<int> status = profile.wait_for(std::chrono::minutes(5));
    if (!status || *status != 0) {
      throw Error("fleet: `edgefm profile` failed; its log ends:\n" + profile.log_tail());
    }
    job_request = {{"profile", read_json_file(profile_file)},
                   {"epochs", o.job_epochs},
                   {"table_epochs", 1}};
  }

  // The devices: a link each (its trace, offset), a runtime each, a state folder each.
  const double rtt_ms = 2.0 * static_cast<double>(o.delay_ms);
  std::vector<std::unique_ptr<Device>> devices;
  for (size_t d = 0; d < o.devices; ++d) {
    auto device = std::make_unique<Device>();
    Device& dev = *device;
    dev.row.device = device_name(d);
    dev.submits_job = d < o.jobs;
    dev.dir = devices_dir / dev.row.device;
    fs::create_directories(dev.dir);
    const net::Trace& trace = traces[d % traces.size()];
    const double period_s = static_cast<double>(trace.period_ms()) / 1000.0;
    dev.row.trace = trace_paths[d % traces.size()].stem().string();
    dev.row.trace_offset_s = std::fmod(static_cast<double>(d) * o.trace_offset_s, period_s);
    for (size_t i = 0; i < per_device; ++i) {
      dev.order.push_back(stream[(d * per_device + i) % stream.size()]);
    }

    net::LinkOptions link = net::link_default_options();
    link.upstream_port = static_cast<uint16_t>(serve_port);
    link.uplink_trace = trace;
    link.delay_ms = o.delay_ms;
    link.trace_offset_s = dev.row.trace_offset_s;
    link.seed = d + 1;
    dev.link = std::make_unique<net::LinkEmulator>(link);

    edge::RuntimeOptions r = edge::runtime_default_options();
    r.policy = edge::parse_policy(o.policy);
    r.l_app_ms = o.l_app_ms;
    r.client = client_options;
    r.client.url = "http://127.0.0.1:" + std::to_string(dev.link->port());
    r.max_in_flight = o.max_in_flight;
    r.cloud_timeout_ms = o.cloud_timeout_ms;
    r.estimator.nominal_rtt_ms = rtt_ms;
    r.estimator.nominal_uplink_bps = o.nominal_uplink_mbps * 1e6;
    r.nominal_cloud_ms = t_cloud_ms;
    r.seed = d + 1;
    dev.log = std::make_unique<JsonLinesLog>((dev.dir / "answers.jsonl").string());
    dev.answers.reserve(per_device);
    Device* self = &dev;
    dev.runtime = std::make_unique<edge::EdgeRuntime>(
        edge::load_edge_model(o.student, needs_profile), r, [self](const edge::Answer& a) {
          self->answers.push_back(a);
          self->log->write(edge::answer_to_json(a));
          self->answered.fetch_add(1);
        });
    devices.push_back(std::move(device));
  }
  const size_t total = o.devices * per_device;
  std::fprintf(stderr,
               "[fleet] %zu devices x %zu samples at %.1f/s each against the cloud on port %d "
               "(service time %.2f ms); policy %s, L_app %.1f ms, %zu traces, delay %lld ms\n",
               o.devices, per_device, o.rate, serve_port, t_cloud_ms, o.policy.c_str(), o.l_app_ms,
               traces.size(), static_cast<long long>(o.delay_ms));
  std::fflush(stderr);

  // Every device replays on a thread of its own, staggered evenly over one arrival interval.
  const Clock::time_point start = Clock::now();
  std::atomic<bool> stop_replay{false};
  std::atomic<size_t> finished{0};  // device threads done (replayed and drained, or failed)
  std::vector<std::thread> threads;
  for (size_t d = 0; d < devices.size(); ++d) {
    Device* dev = devices[d].get();
    const auto offset = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
        static_cast<double>(d) / (static_cast<double>(devices.size()) * o.rate)));
    threads.emplace_back([dev, &dataset, &o, &stop_replay, &finished, start, offset] {
      std::this_thread::sleep_until(start + offset);
      try {
        dev->fed = edge::replay(*dev->runtime, dataset, dev->order, o.rate, &stop_replay);
        dev->runtime->drain();
      } catch (const std::exception& e) {
        dev->error = e.what();
      }
      finished.fetch_add(1);
    });
  }
  const double expected_s = static_cast<double>(per_device) / o.rate;
  std::vector<std::thread> job_threads;
  std::atomic<size_t> jobs_finished{0};
  // A job takes a few seconds to a minute here; one worker runs them in turn.
  const Clock::time_point job_deadline =
      start + std::chrono::seconds(static_cast<int64_t>(expected_s) + 120 +
                                   120 * static_cast<int64_t>(o.jobs));
  for (auto& dev : devices) {
    if (!dev->submits_job) continue;
    cloud::ClientOptions job_client = client_options;
    job_client.url = "http://127.0.0.1:" + std::to_string(dev->link->port());
    job_client.read_timeout_s = 60.0;
    job_threads.emplace_back([d = dev.get(), &dataset, job_client, &job_request, &o, &stop_replay,
                              &jobs_finished, job_deadline] {
      run_device_job(*d, dataset, job_client, job_request, o.job_uploads, stop_replay, job_deadline);
      jobs_finished.fetch_add(1);
    });
  }
  Progress progress("fleet", static_cast<int64_t>(total), "answers");
  std::string failure;
  bool interrupted = false;
  auto answered_total = [&] {
    size_t n = 0;
    for (const auto& dev : devices) n += dev->answered.load();
    return n;
  };
  const Clock::time_point hard_deadline =
      start + std::chrono::seconds(120 + static_cast<int64_t>(3.0 * expected_s));
  for (;;) {
    const size_t done = answered_total();
    if (finished.load() == devices.size()) break;
    if (o.stop != nullptr && o.stop->load() && !stop_replay.load()) {
      interrupted = true;
      stop_replay = true;
    }
    if (failure.empty() && !serve.running()) {
      failure = "the cloud service exited during the run; its log ends:\n" + serve.log_tail();
      stop_replay = true;
    }
    if (failure.empty() && Clock::now() > hard_deadline) {
      failure = "the fleet did not finish in time (" + std::to_string(done) + " of " +
                std::to_string(total) + " answers)";
      stop_replay = true;
    }
    if (stop_replay.load()) break;  // the replays return, the runtimes drain: joined below
    progress.update(static_cast<int64_t>(done));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
  const Clock::time_point end = Clock::now();
  // A stopped run ends without a 100 % line; the summary below says how far it came.
  if (!interrupted && failure.empty()) progress.finish();
  if (!job_threads.empty()) {
    std::fprintf(stderr, "[fleet] replay done; waiting for %zu customization jobs\n",
                 job_threads.size());
    std::fflush(stderr);
  }
  while (jobs_finished.load() < job_threads.size()) {
    if (o.stop != nullptr && o.stop->load() && !stop_replay.load()) {
      interrupted = true;
      stop_replay = true;  // the jobs are cancelled
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  for (auto& t : job_threads) t.join();

  // Every runtime drained (each thread drained its own); the links and runtimes go before
  // the service.
  FleetResult result = summarize_fleet(devices, o.l_app_ms, seconds_between(start, end), failure);
  result.interrupted = interrupted;
  devices.clear();  // runtimes (their workers) and links stop here
  serve.stop();

  write_outputs(o, result, trace_paths, per_device, t_cloud_ms);
  std::fprintf(stderr,
               "[fleet] %zu answers of %zu samples (%zu lost) in %.1f s; cloud %.1f requests/s, "
               "p99 %.2f ms (call p99 %.1f ms); worst device p99 %.1f ms; wrote "
               "%s/results.{json,csv,md}\n",
               result.answers, result.samples, result.lost_answers, result.duration_s,
               result.cloud_requests_per_s, result.cloud_p99_ms, result.cloud_call_p99_ms,
               result.device_p99_max_ms, out_dir.string().c_str());
  if (result.jobs > 0) {
    std::fprintf(stderr, "[fleet] customization jobs: %zu of %zu done; waited p50 %.0f ms, max %.0f ms\n",
                 result.jobs_done, result.jobs, result.job_wait_ms_p50, result.job_wait_ms_max);
  }
  if (!failure.empty()) throw Error("fleet: " + failure);
  if (interrupted) {
    throw Error("fleet interrupted by a signal; the answers so far are in " + out_dir.string());
  }
  return result;
}

}  // namespace edgefm::harness
