#include "edge/endpoint.h"

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "cloud/oip.h"
#include "common/error.h"
#include "data/dataset.h"

namespace edgefm::edge {
namespace {

using cloud::DataType;
using cloud::InferRequest;
using cloud::InferResponse;
using cloud::ProtocolError;
using cloud::Tensor;

const std::vector<std::string> kOutputs = {"class_name", "score",      "route",
                                           "fallback_reason", "latency_ms", "model_version"};

// One request's samples waiting for their answers.
struct Waiting {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<Answer> answers;
  size_t remaining = 0;
};

// A Prometheus label value, escaped.
std::string label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string number(double v) {
  if (std::isinf(v)) return v < 0 ? "-Inf" : "+Inf";
  if (std::isnan(v)) return "NaN";
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

}  // namespace

struct EdgeEndpoint::Impl {
  EdgeRuntime& runtime;
  EndpointOptions options;
  httplib::Server http;
  std::thread listener;
  int port = 0;
  std::atomic<bool> listen_returned{false};
  std::once_flag stop_once;

  std::mutex process_mutex;  // one sample into the runtime at a time, ids in order
  uint64_t next_id = 0;

  std::mutex pending_mutex;
  std::map<uint64_t, std::pair<std::shared_ptr<Waiting>, size_t>> pending;

  mutable std::mutex counts_mutex;
  std::map<std::string, int64_t> answers_by_route;
  std::map<std::string, int64_t> fallbacks_by_reason;
  std::map<int, int64_t> requests_by_code;

  Impl(EdgeRuntime& r, EndpointOptions o) : runtime(r), options(std::move(o)) {}

  // The samples of a request, as the student's input tensors.
  std::vector<std::vector<uint8_t>> samples_of(const InferRequest& request) const {
    const auto model = runtime.model();
    const data::SampleSpec spec = model->encoder->spec();
    const models::ImageShape shape = model->encoder->input_shape();
    std::vector<std::vector<uint8_t>> samples;
    if (const Tensor* files = request.input("files"); files != nullptr) {
      if (request.inputs.size() != 1 || files->datatype != DataType::bytes ||
          files->shape.size() != 1 || files->strings.empty()) {
        throw ProtocolError("input 'files': expected the only input, BYTES of shape [N] with N >= 1 "
                            "(each an encoded " + data::to_string(spec.modality) +
                            " file)");
      }
      check_batch(files->strings.size());
      for (size_t i = 0; i < files->strings.size(); ++i) {
        const std::string& file = files->strings[i];
        try {
          samples.push_back(data::decode_sample(reinterpret_cast<const uint8_t*>(file.data()),
                                                file.size(), spec,
                                                "input 'files' element " + std::to_string(i)));
        } catch (const Error& e) {
          throw ProtocolError(e.what());
        }
      }
      return samples;
    }
    const int64_t n = cloud::check_images_input(request, options.model_name, shape.channels,
                                                shape.height, shape.width);
    check_batch(static_cast<size_t>(n));
    const Tensor& images = *request.input("images");
    const auto bytes = static_cast<size_t>(shape.numel());
    if (images.datatype == DataType::uint8) {
      const auto& all = images.uint8s();
      for (int64_t i = 0; i < n; ++i) {
        samples.emplace_back(all.begin() + static_cast<ptrdiff_t>(i * bytes),
                             all.begin() + static_cast<ptrdiff_t>((i + 1) * bytes));
      }
      return samples;
    }
    const std::vector<float> values = cloud::unit_floats(images);  // in [0, 1]
    for (int64_t i = 0; i < n; ++i) {
      std::vector<uint8_t> sample(bytes);
      data::to_bytes(values.data() + static_cast<size_t>(i) * bytes, bytes, sample.data());
      samples.push_back(std::move(sample));
    }
    return samples;
  }

  void check_batch(size_t n) const {
    if (n > options.max_batch) {
      throw ProtocolError("a request holds at most " + std::to_string(options.max_batch) +
                          " samples, got " + std::to_string(n));
    }
  }

  // Feeds the samples to the runtime and waits for every answer.
  std::vector<Answer> answer(std::vector<std::vector<uint8_t>> samples) {
    auto waiting = std::make_shared<Waiting>();
    waiting->answers.resize(samples.size());
    waiting->remaining = samples.size();
    {
      std::lock_guard<std::mutex> lock(process_mutex);
      for (size_t i = 0; i < samples.size(); ++i) {
        Sample sample;
        sample.id = next_id++;
        sample.pixels = std::move(samples[i]);
        sample.arrival = Clock::now();
        {
          std::lock_guard<std::mutex> pending_lock(pending_mutex);
          pending[sample.id] = {waiting, i};
        }
        runtime.process(std::move(sample));
      }
    }
    // The runtime answers every sample by its deadline (the cloud timeout); the margin only
    // guards against a runtime that stopped.
    const auto limit = std::chrono::milliseconds(static_cast<int64_t>(runtime.cloud_timeout_ms())) +
                       std::chrono::seconds(10);
    std::unique_lock<std::mutex> lock(waiting->mutex);
    if (!waiting->done.wait_for(lock, limit, [&] { return waiting->remaining == 0; })) {
      throw Error("the edge runtime did not answer in time");
    }
    return waiting->answers;
  }

  void on_answer(const Answer& a) {
    {
      std::lock_guard<std::mutex> lock(counts_mutex);
      ++answers_by_route[answer_route_name(a.route)];
      if (a.route == AnswerRoute::fallback) ++fallbacks_by_reason[a.fallback_reason];
    }
    std::shared_ptr<Waiting> waiting;
    size_t index = 0;
    {
      std::lock_guard<std::mutex> lock(pending_mutex);
      auto it = pending.find(a.id);
      if (it == pending.end()) return;
      std::tie(waiting, index) = it->second;
      pending.erase(it);
    }
    std::lock_guard<std::mutex> lock(waiting->mutex);
    waiting->answers[index] = a;
    if (--waiting->remaining == 0) waiting->done.notify_all();
  }

  InferResponse infer(const InferRequest& request) {
    const auto wanted = cloud::resolve_outputs(request, options.model_name, kOutputs, kOutputs);
    const std::vector<Answer> answers = answer(samples_of(request));
    const auto n = static_cast<int64_t>(answers.size());
    std::vector<std::string> names, routes, reasons, versions;
    std::vector<float> scores, latencies;
    for (const Answer& a : answers) {
      names.push_back(a.prediction);
      routes.push_back(answer_route_name(a.route));
      reasons.push_back(a.fallback_reason);
      versions.push_back(a.model_version);
      scores.push_back(a.score);
      latencies.push_back(static_cast<float>(a.latency_ms));
    }
    std::vector<Tensor> available;
    available.push_back(Tensor::from_strings("class_name", {n}, std::move(names)));
    available.push_back(Tensor::from_floats("score", {n}, scores));
    available.push_back(Tensor::from_strings("route", {n}, std::move(routes)));
    available.push_back(Tensor::from_strings("fallback_reason", {n}, std::move(reasons)));
    available.push_back(Tensor::from_floats("latency_ms", {n}, latencies));
    available.push_back(Tensor::from_strings("model_version", {n}, versions));
    InferResponse response;
    response.model_name = options.model_name;
    response.model_version = versions.empty() ? "" : versions.back();
    response.id = request.id;
    cloud::add_outputs(response, wanted, available);
    return response;
  }

  void count(int code) {
    std::lock_guard<std::mutex> lock(counts_mutex);
    ++requests_by_code[code];
  }

  void fail(httplib::Response& res, int status, const std::string& message) {
    res.status = status;
    res.set_content(cloud::error_body(message), "application/json");
  }

  bool known_model(const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] == options.model_name) return true;
    fail(res, 404, "no model '" + std::string(req.matches[1]) + "'; this edge serves '" +
                       options.model_name + "'");
    return false;
  }

  nlohmann::json model_metadata() const {
    const auto model = runtime.model();
    const models::ImageShape shape = model->encoder->input_shape();
    return {{"name", options.model_name},
            {"versions", nlohmann::json::array({model->version})},
            {"platform", "edgefm-edge"},
            {"inputs",
             {{{"name", "images"},
               {"datatype", "UINT8"},
               {"shape", {-1, shape.channels, shape.height, shape.width}}},
              {{"name", "files"}, {"datatype", "BYTES"}, {"shape", {-1}}}}},
            {"outputs",
             {{{"name", "class_name"}, {"datatype", "BYTES"}, {"shape", {-1}}},
              {{"name", "score"}, {"datatype", "FP32"}, {"shape", {-1}}},
              {{"name", "route"}, {"datatype", "BYTES"}, {"shape", {-1}}},
              {{"name", "fallback_reason"}, {"datatype", "BYTES"}, {"shape", {-1}}},
              {{"name", "latency_ms"}, {"datatype", "FP32"}, {"shape", {-1}}},
              {{"name", "model_version"}, {"datatype", "BYTES"}, {"shape", {-1}}}}},
            {"parameters",
             {{"sample_spec", data::to_json(model->encoder->spec())},
              {"classes", model->pool.names()},
              {"arch", model->encoder->arch()}}}};
  }

  void install_routes() {
    auto json_answer = [](httplib::Response& res, const nlohmann::json& body) {
      res.status = 200;
      res.set_content(body.dump(), "application/json");
    };
    http.Get("/v2/health/live", [json_answer](const httplib::Request&, httplib::Response& res) {
      json_answer(res, {{"live", true}});
    });
    http.Get("/v2/health/ready", [json_answer](const httplib::Request&, httplib::Response& res) {
      json_answer(res, {{"ready", true}});
    });
    http.Get(R"(/v2/?)", [this, json_answer](const httplib::Request&, httplib::Response& res) {
      json_answer(res, {{"name", "edgefm-edge"},
                        {"version", "1"},
                        {"extensions", {"binary_tensor_data"}}});
    });
    http.Get(R"(/v2/models/([^/]+)(?:/versions/[^/]+)?)",
             [this, json_answer](const httplib::Request& req, httplib::Response& res) {
               if (known_model(req, res)) json_answer(res, model_metadata());
             });
    http.Get(R"(/v2/models/([^/]+)(?:/versions/[^/]+)?/ready)",
             [this, json_answer](const httplib::Request& req, httplib::Response& res) {
               if (known_model(req, res)) json_answer(res, {{"name", options.model_name}, {"ready", true}});
             });
    http.Post(R"(/v2/models/([^/]+)(?:/versions/[^/]+)?/infer)",
              [this](const httplib::Request& req, httplib::Response& res) {
                if (known_model(req, res)) handle_infer(req, res);
                count(res.status);
              });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.status = 200;
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
  }

  void handle_infer(const httplib::Request& req, httplib::Response& res) {
    try {
      std::optional<size_t> json_size;
      if (req.has_header(cloud::kHeaderContentLength)) {
        json_size = cloud::parse_header_content_length(req.get_header_value(cloud::kHeaderContentLength));
      }
      const InferResponse response = infer(cloud::decode_request(req.body, json_size));
      cloud::EncodedBody encoded = cloud::encode_response(response);
      res.status = 200;
      if (encoded.json_size) {
        res.set_header(cloud::kHeaderContentLength, std::to_string(*encoded.json_size));
        res.set_content(std::move(encoded.body), "application/octet-stream");
      } else {
        res.set_content(std::move(encoded.body), "application/json");
      }
    } catch (const ProtocolError& e) {
      fail(res, 400, e.what());
    } catch (const std::exception& e) {
      fail(res, 500, e.what());
    }
  }

  std::string metrics_text() const {
    const RuntimeStats s = runtime.stats();
    std::string out;
    auto series = [&out](const char* name, const char* type, const char* help) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    std::lock_guard<std::mutex> lock(counts_mutex);
    series("edgefm_edge_answers_total", "counter", "Answers given through this endpoint and the runtime, by route.");
    for (const char* route : {"edge", "cloud", "fallback", "budget"}) {
      auto it = answers_by_route.find(route);
      out += std::string("edgefm_edge_answers_total{route=\"") + route + "\"} " +
             std::to_string(it == answers_by_route.end() ? 0 : it->second) + "\n";
    }
    series("edgefm_edge_fallbacks_total", "counter", "Cloud-bound samples answered by the student, by reason.");
    for (const auto& [reason, n] : fallbacks_by_reason) {
      out += "edgefm_edge_fallbacks_total{reason=\"" + label(reason) + "\"} " + std::to_string(n) + "\n";
    }
    series("edgefm_edge_requests_total", "counter", "Inference requests, by HTTP status.");
    for (const auto& [code, n] : requests_by_code) {
      out += "edgefm_edge_requests_total{code=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
    }
    series("edgefm_edge_threshold", "gauge", "The routing threshold in force (score >= threshold: the edge answers).");
    out += "edgefm_edge_threshold " + number(s.threshold) + "\n";
    series("edgefm_edge_network_rtt_ms", "gauge", "Estimated round-trip time to the cloud.");
    out += "edgefm_edge_network_rtt_ms " + number(s.network.rtt_ms) + "\n";
    series("edgefm_edge_network_uplink_bps", "gauge", "Estimated uplink bandwidth to the cloud.");
    out += "edgefm_edge_network_uplink_bps " + number(s.network.uplink_bps) + "\n";
    series("edgefm_edge_cloud_calls_total", "counter", "Calls to the cloud FM (probes and audits included).");
    out += "edgefm_edge_cloud_calls_total " + std::to_string(s.cloud_calls) + "\n";
    series("edgefm_edge_cloud_failures_total", "counter", "Cloud calls that failed or timed out.");
    out += "edgefm_edge_cloud_failures_total " + std::to_string(s.cloud_failures) + "\n";
    series("edgefm_edge_bytes_up_total", "counter", "Request bytes sent to the cloud.");
    out += "edgefm_edge_bytes_up_total " + std::to_string(s.bytes_up) + "\n";
    series("edgefm_edge_queue_depth", "gauge", "Samples taken but not answered yet.");
    out += "edgefm_edge_queue_depth " + std::to_string(s.processed - s.answered) + "\n";
    series("edgefm_edge_model_info", "gauge", "The model in force (value 1).");
    const auto model = runtime.model();
    out += "edgefm_edge_model_info{version=\"" + label(model->version) + "\",arch=\"" +
           label(model->encoder->arch()) + "\"} 1\n";
    return out;
  }
};

EdgeEndpoint::EdgeEndpoint(EdgeRuntime& runtime, EndpointOptions options)
    : impl_(std::make_unique<Impl>(runtime, std::move(options))) {
  Impl& s = *impl_;
  const EndpointOptions& o = s.options;
  if (o.threads < 1) throw Error("edge endpoint: threads must be at least 1");
  s.http.new_task_queue = [threads = o.threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  s.http.set_tcp_nodelay(true);
  s.http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  s.http.set_payload_max_length(o.max_request_bytes);
  s.http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      res.set_content(cloud::error_body(res.status == 413 ? "request body too large"
                                                          : "HTTP " + std::to_string(res.status)),
                      "application/json");
    }
  });
  s.install_routes();
  if (o.port == 0) {
    s.port = s.http.bind_to_any_port(o.host);
    if (s.port < 0) throw Error("edge endpoint: cannot bind an ephemeral port on '" + o.host + "'");
  } else {
    if (!s.http.bind_to_port(o.host, o.port)) {
      throw Error("edge endpoint: cannot bind " + o.host + ":" + std::to_string(o.port) +
                  " (in use, or not an address of this machine)");
    }
    s.port = o.port;
  }
  s.listener = std::thread([impl = impl_.get()] {
    impl->http.listen_after_bind();
    impl->listen_returned = true;
  });
  // stop() is a no-op until the listener runs; wait for it so an early stop() cannot hang.
  while (!s.http.is_running() && !s.listen_returned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

EdgeEndpoint::~EdgeEndpoint() { stop(); }

void EdgeEndpoint::on_answer(const Answer& answer) { impl_->on_answer(answer); }

int EdgeEndpoint::port() const { return impl_->port; }

std::string EdgeEndpoint::url() const {
  return "http://" + impl_->options.host + ":" + std::to_string(impl_->port);
}

void EdgeEndpoint::stop() {
  std::call_once(impl_->stop_once, [this] {
    impl_->http.stop();
    if (impl_->listener.joinable()) impl_->listener.join();
  });
}

std::string EdgeEndpoint::metrics_text() const { return impl_->metrics_text(); }

}  // namespace edgefm::edge
