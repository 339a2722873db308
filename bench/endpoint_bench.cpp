// What the local endpoint (`edgefm edge --listen`) adds to an answer: the same student, the
// same samples, at batch 1, answered (a) by the runtime in process and (b) by an application
// posting each sample to the endpoint on 127.0.0.1 over a kept-alive connection, JSON or
// binary tensor data. Policy edge-only, so the cloud plays no part. Prints a table and, with
// --out-dir, writes endpoint.json (with provenance).
//
//   build/bench/endpoint_bench --student build/test-fixtures/student.pt --samples 2000
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>

#include "cloud/oip.h"
#include "common/json_io.h"
#include "common/provenance.h"
#include "common/table.h"
#include "data/dataset.h"
#include "edge/endpoint.h"
#include "edge/runtime.h"
#include "eval/metrics.h"

namespace edgefm {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string student = "models/student.pt";
  size_t samples = 2000;
  size_t warmup = 200;
  std::string out_dir;
};

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Per-sample latencies of one way of asking.
struct Series {
  std::string mode;
  std::vector<double> ms;
};

int run(const Options& o) {
  edge::EdgeModel model = edge::load_edge_model(o.student, /*require_calibration=*/false);
  const data::SampleSpec spec = model.encoder->spec();
  const models::ImageShape shape = model.encoder->input_shape();
  const data::Dataset test = data::load_dataset(data::fashion_mnist_description(), data::Part::test,
                                                std::min<size_t>(o.samples, 10000));
  data::check_same_spec(spec, "the student", test.spec, "Fashion-MNIST");
  const size_t bytes = test.sample_size();
  auto sample_bytes = [&](size_t i) {
    const auto* first = test.samples.data() + (i % test.size()) * bytes;
    return std::vector<uint8_t>(first, first + bytes);
  };

  edge::RuntimeOptions options = edge::runtime_default_options();
  options.policy = edge::Policy::edge_only;
  std::mutex mutex;
  std::condition_variable answered;
  uint64_t last_answer = UINT64_MAX;
  edge::EdgeEndpoint* endpoint_ptr = nullptr;
  edge::EdgeRuntime runtime(std::move(model), options, [&](const edge::Answer& a) {
    if (endpoint_ptr != nullptr) endpoint_ptr->on_answer(a);
    std::lock_guard<std::mutex> lock(mutex);
    last_answer = a.id;
    answered.notify_all();
  });

  // (a) In process: process() returns after the edge answer is delivered.
  Series in_process{"in-process runtime", {}};
  uint64_t id = 0;
  for (size_t i = 0; i < o.warmup + o.samples; ++i) {
    edge::Sample s;
    s.id = id++;
    s.pixels = sample_bytes(i);
    const auto start = Clock::now();
    s.arrival = start;
    runtime.process(std::move(s));
    {
      std::unique_lock<std::mutex> lock(mutex);
      answered.wait(lock, [&] { return last_answer == id - 1; });
    }
    if (i >= o.warmup) in_process.ms.push_back(ms_since(start));
  }

  // (b) Through the endpoint (its own ids; the sink hands answers to it).
  edge::EndpointOptions e;
  e.port = 0;
  edge::EdgeEndpoint endpoint(runtime, e);
  endpoint_ptr = &endpoint;
  httplib::Client client("127.0.0.1", endpoint.port());
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  const std::vector<int64_t> request_shape = {1, shape.channels, shape.height, shape.width};
  std::vector<Series> http;
  for (const bool binary : {false, true}) {
    Series series{binary ? "endpoint, binary tensor" : "endpoint, JSON tensor", {}};
    for (size_t i = 0; i < o.warmup + o.samples; ++i) {
      cloud::InferRequest request;
      request.inputs.push_back(cloud::Tensor::from_uint8s("images", request_shape, sample_bytes(i)));
      request.inputs.back().binary = binary;
      request.outputs = {{"class_name", binary}, {"route", binary}};
      const auto start = Clock::now();
      const cloud::EncodedBody body = cloud::encode_request(request);
      httplib::Headers headers;
      if (body.json_size) headers.emplace(cloud::kHeaderContentLength, std::to_string(*body.json_size));
      auto res = client.Post("/v2/models/edge/infer", headers, body.body,
                             binary ? "application/octet-stream" : "application/json");
      if (!res || res->status != 200) {
        std::fprintf(stderr, "endpoint_bench: request failed: %s\n",
                     res ? res->body.c_str() : httplib::to_string(res.error()).c_str());
        return 1;
      }
      std::optional<size_t> json_size;
      if (res->has_header(cloud::kHeaderContentLength)) {
        json_size = cloud::parse_header_content_length(res->get_header_value(cloud::kHeaderContentLength));
      }
      const cloud::InferResponse answer = cloud::decode_response(res->body, json_size);
      if (answer.output("class_name") == nullptr) {
        std::fprintf(stderr, "endpoint_bench: an answer without class_name\n");
        return 1;
      }
      if (i >= o.warmup) series.ms.push_back(ms_since(start));
    }
    http.push_back(std::move(series));
  }
  endpoint_ptr = nullptr;
  endpoint.stop();

  const eval::LatencySummary base = eval::summarize_latency(in_process.ms);
  Table table({"mode", "samples", "p50 ms", "p90 ms", "p99 ms", "mean ms", "p50 overhead ms"});
  json rows = json::array();
  auto add = [&](const Series& s) {
    const eval::LatencySummary l = eval::summarize_latency(s.ms);
    std::vector<double> sorted = s.ms;
    std::sort(sorted.begin(), sorted.end());
    const double p90 = sorted[std::min(sorted.size() - 1, sorted.size() * 9 / 10)];
    const double overhead = l.p50_ms - base.p50_ms;
    char cells[5][32];
    std::snprintf(cells[0], 32, "%.3f", l.p50_ms);
    std::snprintf(cells[1], 32, "%.3f", p90);
    std::snprintf(cells[2], 32, "%.3f", l.p99_ms);
    std::snprintf(cells[3], 32, "%.3f", l.mean_ms);
    std::snprintf(cells[4], 32, "%.3f", overhead);
    table.add_row({s.mode, std::to_string(s.ms.size()), cells[0], cells[1], cells[2], cells[3],
                   &s == &in_process ? "-" : cells[4]});
    rows.push_back({{"mode", s.mode}, {"samples", s.ms.size()}, {"p50_ms", l.p50_ms},
                    {"p90_ms", p90}, {"p99_ms", l.p99_ms}, {"mean_ms", l.mean_ms},
                    {"p50_overhead_ms", &s == &in_process ? 0.0 : overhead}});
  };
  add(in_process);
  for (const auto& s : http) add(s);
  std::printf("Local endpoint overhead at batch 1 (student %s, edge-only, %zu samples after %zu "
              "warm-up)\n", o.student.c_str(), o.samples, o.warmup);
  table.print(std::cout);
  if (!o.out_dir.empty()) {
    std::filesystem::create_directories(o.out_dir);
    write_json_file(std::filesystem::path(o.out_dir) / "endpoint.json",
                    {{"student", o.student}, {"arch", runtime.model()->encoder->arch()},
                     {"rows", rows}, {"target_p50_overhead_ms", 0.3}, {"provenance", provenance()}});
    std::fprintf(stderr, "endpoint_bench: wrote %s/endpoint.json\n", o.out_dir.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace edgefm

int main(int argc, char** argv) {
  edgefm::set_command_line(argc, argv);
  edgefm::Options o;
  CLI::App app{"What `edgefm edge --listen` adds to an answer over the in-process runtime, at batch 1.",
               "endpoint_bench"};
  app.add_option("--student", o.student, "student artifact")->capture_default_str()->check(CLI::ExistingFile);
  app.add_option("--samples", o.samples, "timed samples per mode")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--warmup", o.warmup, "untimed samples first")->capture_default_str();
  app.add_option("--out-dir", o.out_dir, "write endpoint.json here");
  CLI11_PARSE(app, argc, argv);
  try {
    return edgefm::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "endpoint_bench: %s\n", e.what());
    return 1;
  }
}
