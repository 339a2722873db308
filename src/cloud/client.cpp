#include "cloud/client.h"

#include <cctype>
#include <chrono>
#include <cmath>
#include <thread>

#include <httplib.h>

namespace edgefm::cloud {

namespace {

using Clock = std::chrono::steady_clock;

std::chrono::microseconds to_micros(double seconds) {
  return std::chrono::microseconds(static_cast<int64_t>(std::llround(seconds * 1e6)));
}

int64_t int_parameter(const json& parameters, const char* key) {
  if (!parameters.is_object() || !parameters.contains(key)) return -1;
  const auto& v = parameters.at(key);
  return v.is_number_integer() ? v.get<int64_t>() : -1;
}

std::string server_message_of(const httplib::Response& res) {
  try {
    auto body = parse_untrusted_json(res.body);
    if (body.is_object() && body.contains("error") && body.at("error").is_string()) {
      return body.at("error").get<std::string>();
    }
  } catch (const JsonInputError&) {
  }
  return res.body.empty() ? "(empty body)" : res.body.substr(0, 500);
}

const Tensor& require_output(const InferResponse& response, const std::string& name,
                             const std::string& model) {
  const Tensor* t = response.output(name);
  if (t == nullptr) {
    throw ProtocolError("inference response of model '" + model + "': missing output '" + name +
                        "'");
  }
  return *t;
}

}  // namespace

ClientOptions client_default_options() { return ClientOptions{}; }

struct OipClient::Impl {
  ClientOptions options;
  std::unique_ptr<httplib::Client> client;
  httplib::Client& http;

  static std::unique_ptr<httplib::Client> connect(const std::string& url) {
    std::unique_ptr<httplib::Client> client;
    try {
      client = std::make_unique<httplib::Client>(url);
    } catch (const std::exception& e) {
      throw Error("OIP client: cannot use server URL '" + url + "': " + e.what());
    }
    if (!client->is_valid()) {
      throw Error("OIP client: cannot use server URL '" + url + "': expected http://host:port");
    }
    return client;
  }

  explicit Impl(ClientOptions opts)
      : options(std::move(opts)), client(connect(options.url)), http(*client) {
    http.set_keep_alive(true);
    http.set_tcp_nodelay(true);
    http.set_connection_timeout(to_micros(options.connect_timeout_s));
    http.set_read_timeout(to_micros(options.read_timeout_s));
    http.set_write_timeout(to_micros(options.write_timeout_s));
    if (!options.token.empty()) http.set_bearer_token_auth(options.token);
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    if (!options.ca_cert_file.empty()) http.set_ca_cert_path(options.ca_cert_file.c_str());
#endif
  }

  // One call with bounded retries on connection failures. Returns the answer whatever its
  // status; throws RequestError(0, ...) when no answer came.
  httplib::Result call(const std::string& method, const std::string& path,
                       const httplib::Headers& headers, const std::string& body,
                       const std::string& content_type, CallStats& stats) {
    const auto start = Clock::now();
    for (int attempt = 0;; ++attempt) {
      const auto attempt_start = Clock::now();
      stats.attempts = attempt + 1;
      httplib::Result result =
          method == "GET"      ? http.Get(path.c_str(), headers)
          : method == "DELETE" ? http.Delete(path.c_str(), headers, body, content_type.c_str())
                               : http.Post(path.c_str(), headers, body, content_type.c_str());
      stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      if (result) return result;
      const auto error = result.error();
      double waited = std::chrono::duration<double>(Clock::now() - attempt_start).count();
      // A read that ran into the timeout means the server is slow, not gone: retrying
      // would only double the wait of a caller that has a fallback.
      bool timed_out = error == httplib::Error::Read && waited >= 0.9 * options.read_timeout_s;
      if (timed_out || attempt >= options.max_retries) {
        std::string what = method + " " + options.url + path + ": no answer (" +
                           httplib::to_string(error) + (timed_out ? ", timed out" : "") +
                           ") after " + std::to_string(attempt + 1) + " attempt(s)";
        throw RequestError(0, httplib::to_string(error), what);
      }
      std::this_thread::sleep_for(to_micros(options.retry_backoff_s * std::pow(2.0, attempt)));
    }
  }

  [[noreturn]] void fail_status(const std::string& method, const std::string& path,
                                const httplib::Response& res) {
    std::string message = server_message_of(res);
    throw RequestError(res.status, message,
                       method + " " + options.url + path + ": HTTP " + std::to_string(res.status) +
                           ": " + message);
  }

  json get_json(const std::string& path) {
    CallStats stats;
    auto res = call("GET", path, {}, "", "", stats);
    if (res->status != 200) fail_status("GET", path, *res);
    try {
      return parse_untrusted_json(res->body);
    } catch (const JsonInputError& e) {
      throw ProtocolError("GET " + path + ": malformed JSON answer: " + e.what());
    }
  }

  bool get_ok(const std::string& path) {
    CallStats stats;
    try {
      auto res = call("GET", path, {}, "", "", stats);
      return res->status == 200;
    } catch (const RequestError&) {
      return false;
    }
  }
};

OipClient::OipClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
OipClient::~OipClient() = default;

const ClientOptions& OipClient::options() const { return impl_->options; }

bool OipClient::live() { return impl_->get_ok("/v2/health/live"); }

bool OipClient::ready() {
  return impl_->get_ok("/v2/health/ready") &&
         impl_->get_ok("/v2/models/" + impl_->options.image_model + "/ready");
}

void OipClient::wait_until_ready(double timeout_s) {
  const auto deadline = Clock::now() + to_micros(timeout_s);
  while (!ready()) {
    if (Clock::now() >= deadline) {
      throw RequestError(0, "not ready",
                         "cloud service at " + impl_->options.url + " not ready after " +
                             std::to_string(timeout_s) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

json OipClient::server_metadata() { return impl_->get_json("/v2"); }

json OipClient::model_metadata(const std::string& model) {
  return impl_->get_json("/v2/models/" + model);
}

InferResponse OipClient::infer(const std::string& model, const InferRequest& request,
                               CallStats* call) {
  CallStats stats;
  const std::string path = "/v2/models/" + model + "/infer";
  EncodedBody encoded = encode_request(request);
  httplib::Headers headers;
  std::string content_type = "application/json";
  if (encoded.json_size) {
    headers.emplace(kHeaderContentLength, std::to_string(*encoded.json_size));
    content_type = "application/octet-stream";
  }
  stats.bytes_sent = static_cast<int64_t>(encoded.body.size());
  httplib::Result res{nullptr, httplib::Error::Unknown};
  try {
    res = impl_->call("POST", path, headers, encoded.body, content_type, stats);
  } catch (const RequestError&) {
    if (call != nullptr) *call = stats;
    throw;
  }
  stats.bytes_received = static_cast<int64_t>(res->body.size());
  if (call != nullptr) *call = stats;
  if (res->status != 200) impl_->fail_status("POST", path, *res);
  std::optional<size_t> json_size;
  if (res->has_header(kHeaderContentLength)) {
    json_size = parse_header_content_length(res->get_header_value(kHeaderContentLength));
  }
  return decode_response(res->body, json_size);
}

OipClient::RawAnswer OipClient::call_raw(
    const std::string& method, const std::string& path, const std::string& body,
    const std::string& content_type, const std::vector<std::pair<std::string, std::string>>& headers) {
  if (method != "GET" && method != "POST" && method != "DELETE") {
    fail_expected("OIP client call", "method GET, POST or DELETE", "'" + method + "'");
  }
  RawAnswer answer;
  httplib::Headers sent(headers.begin(), headers.end());
  answer.call.bytes_sent = static_cast<int64_t>(body.size());
  auto res = impl_->call(method, path, sent, body, content_type, answer.call);
  answer.status = res->status;
  answer.body = std::move(res->body);
  answer.call.bytes_received = static_cast<int64_t>(answer.body.size());
  for (const auto& [name, value] : res->headers) {
    std::string lower = name;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    answer.headers.emplace(std::move(lower), value);
  }
  return answer;
}

ImageInference OipClient::infer_image_tensor(Tensor images, int64_t n) {
  const auto& o = impl_->options;
  images.binary = o.binary;
  InferRequest request;
  request.inputs.push_back(std::move(images));
  for (const char* name : {"embedding", "class_index", "class_name", "margin"}) {
    request.outputs.push_back({name, o.binary});
  }
  ImageInference out;
  InferResponse response = infer(o.image_model, request, &out.call);

  const Tensor& embedding = require_output(response, "embedding", o.image_model);
  if (embedding.shape.size() != 2 || embedding.shape[0] != n) {
    fail_expected("output 'embedding' of model '" + o.image_model + "'",
                  "shape [" + std::to_string(n) + ",D]", shape_string(embedding.shape));
  }
  out.count = n;
  out.dim = static_cast<int>(embedding.shape[1]);
  out.embeddings = embedding.floats();
  out.class_index = require_output(response, "class_index", o.image_model).int64s();
  out.class_name = require_output(response, "class_name", o.image_model).strings;
  out.margin = require_output(response, "margin", o.image_model).floats();
  if (static_cast<int64_t>(out.class_index.size()) != n ||
      static_cast<int64_t>(out.class_name.size()) != n ||
      static_cast<int64_t>(out.margin.size()) != n) {
    fail_expected("outputs of model '" + o.image_model + "'",
                  std::to_string(n) + " class_index, class_name and margin values",
                  std::to_string(out.class_index.size()) + ", " +
                      std::to_string(out.class_name.size()) + " and " +
                      std::to_string(out.margin.size()));
  }
  out.server.queue_us = int_parameter(response.parameters, "queue_time_us");
  out.server.compute_us = int_parameter(response.parameters, "compute_time_us");
  out.server.server_us = int_parameter(response.parameters, "server_time_us");
  out.server.batch_rows = int_parameter(response.parameters, "batch_rows");
  return out;
}

ImageInference OipClient::infer_images(const float* images, int64_t n,
                                       const models::ImageShape& shape) {
  std::vector<int64_t> dims = {n, shape.channels, shape.height, shape.width};
  const size_t count = static_cast<size_t>(n * shape.numel());
  if (impl_->options.upload == ImageUpload::uint8) {
    std::vector<uint8_t> pixels(count);
    data::to_bytes(images, count, pixels.data());
    return infer_image_tensor(Tensor::from_uint8s("images", dims, std::move(pixels)), n);
  }
  return infer_image_tensor(Tensor::from_floats("images", dims, images, count), n);
}

ImageInference OipClient::infer_images_u8(const uint8_t* pixels, int64_t n,
                                          const models::ImageShape& shape) {
  std::vector<int64_t> dims = {n, shape.channels, shape.height, shape.width};
  std::vector<uint8_t> copy(pixels, pixels + n * shape.numel());
  return infer_image_tensor(Tensor::from_uint8s("images", dims, std::move(copy)), n);
}

TextEmbeddings OipClient::embed_text(const std::vector<std::string>& prompts, CallStats* call) {
  const auto& o = impl_->options;
  InferRequest request;
  auto n = static_cast<int64_t>(prompts.size());
  request.inputs.push_back(Tensor::from_strings("prompts", {n}, prompts));
  request.inputs.back().binary = o.binary;
  request.outputs.push_back({"embedding", o.binary});
  InferResponse response = infer(o.text_model, request, call);
  const Tensor& embedding = require_output(response, "embedding", o.text_model);
  if (embedding.shape.size() != 2 || embedding.shape[0] != n) {
    fail_expected("output 'embedding' of model '" + o.text_model + "'",
                  "shape [" + std::to_string(n) + ",D]", shape_string(embedding.shape));
  }
  TextEmbeddings out;
  out.count = n;
  out.dim = static_cast<int>(embedding.shape[1]);
  out.values = embedding.floats();
  return out;
}

std::vector<std::string> OipClient::class_names() {
  const auto& o = impl_->options;
  InferRequest request;
  request.outputs.push_back({"class_names", o.binary});
  InferResponse response = infer(o.text_model, request);
  return require_output(response, "class_names", o.text_model).strings;
}

}  // namespace edgefm::cloud
