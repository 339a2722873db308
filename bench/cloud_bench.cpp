// cloud_bench: throughput and latency of the cloud service with and without dynamic
// batching. Starts the server in-process on 127.0.0.1 with an encoder (the real FM with
// --fm, or the linear stand-in with a configurable cost), drives it with C concurrent OIP
// clients (one keep-alive connection each, binary tensors) for a fixed time at each
// concurrency, once with --max-batch and once with max batch 1, and prints a table; --json
// writes the rows (field names in docs/cloud.md).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "cloud/client.h"
#include "cloud/linear_model.h"
#include "cloud/server.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/provenance.h"
#include "common/table.h"
#include "common/threads.h"
#include "eval/metrics.h"
#include "models/foundation.h"

#ifdef EDGEFM_BENCH_HAS_MODELS
#include "models/edge.h"
#endif

namespace {

using namespace edgefm;
using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string fm_path;
  std::string fm_torchscript;
  std::string fm_pool;
  std::string fm_spec;
  std::string device = "cpu";
  std::vector<int> concurrency = {1, 4, 16, 32};
  int images_per_request = 1;
  int max_batch = 32;
  int64_t max_queue_delay_us = 2000;
  int batch_workers = 1;
  double warmup_s = 1.0;
  double duration_s = 5.0;
  std::string upload = "uint8";
  bool skip_unbatched = false;
  int synthetic_dim = 256;
  int64_t synthetic_call_us = 2000;
  int64_t synthetic_image_us = 100;
  std::string json_path;
};

struct Row {
  std::string mode;
  int max_batch = 0;
  int clients = 0;
  int64_t requests = 0;
  int64_t errors = 0;
  double seconds = 0;
  double requests_per_s = 0;
  double images_per_s = 0;
  eval::LatencySummary latency;
  double mean_batch_rows = 0;
  double mean_queue_us = 0;
  int64_t bytes_per_request = 0;
};

models::FoundationModel load_model(const BenchOptions& o, std::string& description) {
  if (!o.fm_path.empty() || !o.fm_torchscript.empty()) {
#ifdef EDGEFM_BENCH_HAS_MODELS
    models::configure_torch_threads();
    if (!o.fm_torchscript.empty() && o.device != "cpu") {
      throw Error("--fm-torchscript runs on the CPU only; --device " + o.device + " needs --fm");
    }
    // The reference FM's forward runs on --device (the weights are moved there at load).
    auto fm = o.fm_torchscript.empty()
                  ? models::load_foundation_model(o.fm_path, o.device)
                  : models::load_torchscript_foundation_model(
                        o.fm_torchscript, o.fm_pool,
                        data::spec_from_json(read_json_file(o.fm_spec), "--fm-spec"));
    description = fm.version;
    return fm;
#else
    throw Error("this cloud_bench was built without edgefm_models: --fm is not available");
#endif
  }
  cloud::LinearModelOptions linear = cloud::linear_model_default_options();
  linear.embedding_dim = o.synthetic_dim;
  linear.call_cost_us = o.synthetic_call_us;
  linear.image_cost_us = o.synthetic_image_us;
  std::vector<std::string> classes;
  for (int i = 0; i < 10; ++i) classes.push_back("class" + std::to_string(i));
  description = "linear stand-in (dim " + std::to_string(o.synthetic_dim) + ", " +
                std::to_string(o.synthetic_call_us) + " us per call + " +
                std::to_string(o.synthetic_image_us) + " us per image)";
  return cloud::make_linear_foundation_model(linear, classes);
}

Row run_config(const BenchOptions& o, const models::FoundationModel& fm, int max_batch,
               int clients) {
  cloud::ServerOptions server_options = cloud::server_default_options();
  server_options.max_batch = max_batch;
  server_options.max_queue_delay_us = o.max_queue_delay_us;
  server_options.batch_workers = o.batch_workers;
  server_options.threads = std::max(16, clients + 8);
  server_options.max_request_bytes = 256u << 20;
  server_options.device = o.device;
  cloud::CloudServer server(fm, server_options);

  const auto shape = fm.image->input_shape();
  const int64_t n = o.images_per_request;
  std::vector<uint8_t> pixels(static_cast<size_t>(n * shape.numel()));
  uint32_t state = 12345;
  for (auto& p : pixels) {
    state = state * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(state >> 24);
  }
  std::vector<float> images(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) images[i] = pixels[i] / 255.0f;

  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(o.warmup_s));
  const auto measure_to = measure_from + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(o.duration_s));
  std::mutex mutex;
  std::vector<double> latencies_ms;
  std::atomic<int64_t> errors{0}, bytes{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      cloud::ClientOptions client_options = cloud::client_default_options();
      client_options.url = server.url();
      client_options.upload = o.upload == "fp32" ? cloud::ImageUpload::fp32 : cloud::ImageUpload::uint8;
      client_options.read_timeout_s = 60;
      cloud::OipClient client(client_options);
      std::vector<double> mine;
      while (true) {
        auto begin = Clock::now();
        if (begin >= measure_to) break;
        try {
          auto result = client.infer_images(images.data(), n, shape);
          auto end = Clock::now();
          if (begin >= measure_from && end <= measure_to) {
            mine.push_back(std::chrono::duration<double, std::milli>(end - begin).count());
            bytes = result.call.bytes_sent;
          }
        } catch (const std::exception& e) {
          if (++errors == 1) std::fprintf(stderr, "cloud_bench: request failed: %s\n", e.what());
        }
      }
      std::lock_guard lock(mutex);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  server.stop();

  Row row;
  row.mode = max_batch > 1 ? "batched" : "unbatched";
  row.max_batch = max_batch;
  row.clients = clients;
  row.requests = static_cast<int64_t>(latencies_ms.size());
  row.errors = errors.load();
  row.seconds = o.duration_s;
  row.requests_per_s = static_cast<double>(row.requests) / o.duration_s;
  row.images_per_s = row.requests_per_s * static_cast<double>(n);
  if (!latencies_ms.empty()) row.latency = eval::summarize_latency(latencies_ms);
  auto stats = server.batcher_stats();
  row.mean_batch_rows = stats.mean_batch_rows();
  row.mean_queue_us = stats.mean_queue_us();
  row.bytes_per_request = bytes.load();
  return row;
}

json row_json(const Row& r) {
  return {{"mode", r.mode},
          {"max_batch", r.max_batch},
          {"clients", r.clients},
          {"requests", r.requests},
          {"errors", r.errors},
          {"seconds", r.seconds},
          {"requests_per_s", r.requests_per_s},
          {"images_per_s", r.images_per_s},
          {"latency_ms_mean", r.latency.mean_ms},
          {"latency_ms_p50", r.latency.p50_ms},
          {"latency_ms_p95", r.latency.p95_ms},
          {"latency_ms_p99", r.latency.p99_ms},
          {"mean_batch_rows", r.mean_batch_rows},
          {"mean_queue_us", r.mean_queue_us},
          {"bytes_per_request", r.bytes_per_request}};
}

int run(const BenchOptions& o) {
  pin_openblas_to_one_thread();
  if (o.max_batch < 1 || o.images_per_request < 1 || o.duration_s <= 0 || o.concurrency.empty()) {
    throw Error("cloud_bench: --max-batch, --images-per-request, --duration-s and --concurrency "
                "must be positive");
  }
  std::string description;
  models::FoundationModel fm = load_model(o, description);
  std::fprintf(stderr, "cloud_bench: %s on %s, %d cores; %d image(s) per request, %s upload\n",
               description.c_str(), o.device.c_str(), hardware_threads(), o.images_per_request,
               o.upload.c_str());

  std::vector<int> batch_sizes = {o.max_batch};
  if (!o.skip_unbatched && o.max_batch > 1) batch_sizes.push_back(1);
  std::vector<Row> rows;
  for (int clients : o.concurrency) {
    for (int max_batch : batch_sizes) {
      Row row = run_config(o, fm, max_batch, clients);
      std::fprintf(stderr, "  %-9s clients %3d: %8.1f req/s, p50 %.2f ms, p99 %.2f ms, batch %.1f\n",
                   row.mode.c_str(), clients, row.requests_per_s, row.latency.p50_ms,
                   row.latency.p99_ms, row.mean_batch_rows);
      rows.push_back(row);
    }
  }

  Table table({"mode", "max batch", "clients", "req/s", "img/s", "p50 ms", "p99 ms", "mean batch",
               "queue us", "speedup"});
  json summary = json::array();
  for (const auto& r : rows) {
    std::string speedup = "";
    for (const auto& u : rows) {
      if (r.mode == "batched" && u.mode == "unbatched" && u.clients == r.clients && u.requests_per_s > 0) {
        speedup = fmt_num(r.requests_per_s / u.requests_per_s, 2) + "x";
        json entry = {{"clients", r.clients},
                      {"throughput_ratio", r.requests_per_s / u.requests_per_s},
                      {"p50_added_ms", r.latency.p50_ms - u.latency.p50_ms}};
        summary.push_back(entry);
      }
    }
    table.add_row({r.mode, std::to_string(r.max_batch), std::to_string(r.clients),
                   fmt_num(r.requests_per_s, 1), fmt_num(r.images_per_s, 1),
                   fmt_num(r.latency.p50_ms, 2), fmt_num(r.latency.p99_ms, 2),
                   fmt_num(r.mean_batch_rows, 2), fmt_num(r.mean_queue_us, 0), speedup});
  }
  table.print(std::cout);

  if (!o.json_path.empty()) {
    json out_rows = json::array();
    for (const auto& r : rows) out_rows.push_back(row_json(r));
    json result = {{"benchmark", "cloud_bench"},
                   {"model", description},
                   {"device", o.device},
                   {"cores", hardware_threads()},
                   {"compiler", __VERSION__},
                   {"images_per_request", o.images_per_request},
                   {"upload", o.upload},
                   {"max_queue_delay_us", o.max_queue_delay_us},
                   {"batch_workers", o.batch_workers},
                   {"warmup_s", o.warmup_s},
                   {"duration_s", o.duration_s},
                   {"rows", out_rows},
                   {"batched_vs_unbatched", summary},
                   {"provenance", provenance()}};
    write_json_file(o.json_path, result);
    std::fprintf(stderr, "cloud_bench: wrote %s\n", o.json_path.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  set_command_line(argc, argv);
  BenchOptions o;
  CLI::App app{"cloud_bench: requests/s and latency percentiles of the cloud service with and\n"
               "without dynamic batching, at several client concurrencies."};
  app.add_option("--fm", o.fm_path, "reference FM file (from `edgefm fm train`); default: the "
                                    "linear stand-in encoder");
  app.add_option("--fm-torchscript", o.fm_torchscript, "a TorchScript FM instead (needs --fm-pool)");
  app.add_option("--fm-pool", o.fm_pool, "embedding-pool JSON of --fm-torchscript");
  app.add_option("--fm-spec", o.fm_spec, "sample spec JSON of --fm-torchscript");
  app.add_option("--device", o.device, "where the FM runs (reported; passed to the server)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--concurrency", o.concurrency, "client counts to run, e.g. 1,4,16,32")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--images-per-request", o.images_per_request, "images in each request")
      ->capture_default_str();
  app.add_option("--max-batch", o.max_batch, "server max batch of the batched runs")
      ->capture_default_str();
  app.add_option("--max-queue-delay-us", o.max_queue_delay_us, "server max queue delay")
      ->capture_default_str();
  app.add_option("--batch-workers", o.batch_workers, "threads calling the encoder")
      ->capture_default_str();
  app.add_option("--warmup-s", o.warmup_s, "seconds of each run not measured")->capture_default_str();
  app.add_option("--duration-s", o.duration_s, "measured seconds of each run")->capture_default_str();
  app.add_option("--upload", o.upload, "image tensor sent: uint8 (1 B/pixel) or fp32")
      ->capture_default_str()
      ->check(CLI::IsMember({"uint8", "fp32"}));
  app.add_flag("--skip-unbatched", o.skip_unbatched, "run only the batched configuration");
  app.add_option("--synthetic-dim", o.synthetic_dim, "stand-in encoder: embedding size")
      ->capture_default_str();
  app.add_option("--synthetic-call-us", o.synthetic_call_us,
                 "stand-in encoder: fixed cost of each call (sleep), like a GPU launch")
      ->capture_default_str();
  app.add_option("--synthetic-image-us", o.synthetic_image_us,
                 "stand-in encoder: compute per image (busy)")
      ->capture_default_str();
  app.add_option("--json", o.json_path, "write the configuration and rows to this JSON file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cloud_bench: error: %s\n", e.what());
    return 1;
  }
}
