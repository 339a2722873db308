#include "cloud/server.h"

#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <mutex>
#include <regex>
#include <thread>
#include <utility>

#include <httplib.h>

#include "cloud/http_front.h"
#include "cloud/metrics.h"
#include "cloud/oip.h"
#include "common/error.h"
#include "common/json_io.h"

namespace edgefm::cloud {

namespace {

using Clock = std::chrono::steady_clock;

const char* kServerName = "edgefm";
const char* kServerVersion = "0.1.0";
const char* kModelVersion = "1";

// A failure with its HTTP status, thrown inside handlers and answered as {"error": ...}.
struct HttpFailure {
  int status;
  std::string message;
};

const char* kImageOutputs[] = {"embedding", "class_index", "class_name", "margin"};
const char* kTextOutputs[] = {"embedding", "class_names"};

void reply_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void reply_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(error_body(message), "application/json");
}

bool same_token(const std::string& a, const std::string& b) {
  // Compare every byte so the time taken does not reveal how much of a guess was right.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i % (b.empty() ? 1 : b.size())];
  return diff == 0 && !b.empty();
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t micros_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
}

}  // namespace

ServerOptions server_default_options() { return ServerOptions{}; }

struct CloudServer::Impl {
  models::FoundationModel fm;
  ServerOptions options;
  std::vector<ServerExtension> extensions;
  std::vector<std::regex> extension_patterns;
  ServerMetrics metrics;
  std::unique_ptr<DynamicBatcher> batcher;
  HttpFront http;
  std::thread listener;
  int port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<bool> listen_returned{false};
  std::once_flag stop_once;
  std::mutex text_mutex;  // TextEncoder promises no thread safety

  Impl(models::FoundationModel model, ServerOptions opts)
      : fm(std::move(model)), options(std::move(opts)), http(front_options()) {}

  HttpFrontOptions front_options() {
    HttpFrontOptions f;
    f.workers = std::max(1, options.threads);
    f.max_queued = options.max_queued_requests;
    f.max_connections = options.max_connections;
    f.header_timeout_s = options.header_timeout_s;
    f.idle_timeout_s = options.keep_alive_timeout_s;
    f.io_timeout_s = options.io_timeout_s;
    f.request_timeout_s = options.request_timeout_s;
    f.on_front_answer = [this](int status) { metrics.count_response("unrouted", status); };
    return f;
  }

  // ---- request plumbing -------------------------------------------------------------

  void require_token(const httplib::Request& req) const {
    if (options.token.empty() && !options.accept_token) return;
    if (!req.has_header("Authorization")) {
      throw HttpFailure{401, "missing 'Authorization: Bearer <token>' header"};
    }
    const std::string token = bearer_token_of(req.get_header_value("Authorization"));
    const bool known = (!options.token.empty() && same_token(token, options.token)) ||
                       (!token.empty() && options.accept_token && options.accept_token(token));
    if (!known) throw HttpFailure{401, "wrong bearer token"};
  }

  // ---- request bodies ---------------------------------------------------------------
  // Routes that take a body get it through httplib's content reader, so nothing is read
  // before the token is checked, and reading stops at the size limit (chunked bodies too).

  // Whether the request announces a body (Content-Length > 0, or chunked).
  static bool has_body(const httplib::Request& req) {
    if (req.has_header("Transfer-Encoding")) return true;
    return req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0";
  }

  std::string too_large_message(const std::string& size) const {
    return "request body of " + size + " bytes exceeds the limit of " +
           std::to_string(options.max_request_bytes) + " bytes";
  }

  // Reads the whole body (at most max_request_bytes); sets `complete` when all was read.
  std::string read_body(const httplib::Request& req, const httplib::ContentReader& reader,
                        bool& complete) const {
    std::string body;
    if (!has_body(req)) {
      complete = true;
      return body;
    }
    bool too_large = false;
    const bool ok = reader([&](const char* data, size_t size) {
      if (body.size() + size > options.max_request_bytes) {
        too_large = true;
        return false;
      }
      body.append(data, size);
      return true;
    });
    if (too_large) {
      throw HttpFailure{413,
                        too_large_message("more than " + std::to_string(options.max_request_bytes))};
    }
    if (!ok) {
      throw HttpFailure{400, "request body could not be read (malformed chunks, a timeout or a "
                             "closed connection)"};
    }
    complete = true;
    return body;
  }

  // Checks the framing of every request before routing (before any body is read). Throws
  // HttpFailure; the connection is closed after such an answer, as its body is not read.
  void check_framing(const httplib::Request& req) const {
    const std::string& m = req.method;
    if (m == "PRI" || m == "CONNECT" || m == "TRACE") {
      throw HttpFailure{405, "method " + m + " is not served here"};
    }
    const size_t lengths = req.get_header_value_count("Content-Length");
    std::optional<uint64_t> length;
    for (size_t i = 0; i < lengths; ++i) {
      std::string value = req.get_header_value("Content-Length", i);
      if (value.empty() || value.size() > 18 ||
          value.find_first_not_of("0123456789") != std::string::npos) {
        throw HttpFailure{400,
                          "Content-Length: expected a non-negative integer, got '" + value + "'"};
      }
      const uint64_t v = std::stoull(value);
      if (length && *length != v) {
        throw HttpFailure{400, "conflicting Content-Length headers (" + std::to_string(*length) +
                                   " and " + std::to_string(v) + ")"};
      }
      length = v;
    }
    const size_t encodings = req.get_header_value_count("Transfer-Encoding");
    if (encodings > 0) {
      if (length) throw HttpFailure{400, "both Transfer-Encoding and Content-Length given"};
      std::string value = req.get_header_value("Transfer-Encoding");
      for (auto& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (encodings > 1 || value != "chunked") {
        throw HttpFailure{400, "Transfer-Encoding: only 'chunked' is supported"};
      }
    }
    if ((m == "POST" || m == "PUT" || m == "PATCH") && !length && encodings == 0) {
      throw HttpFailure{411,
                        "a " + m + " request needs a Content-Length header (or chunked transfer)"};
    }
    if (length && *length > options.max_request_bytes) {
      throw HttpFailure{413, too_large_message(std::to_string(*length))};
    }
    if (has_body(req) && req.is_multipart_form_data()) {
      throw HttpFailure{415, "multipart/form-data bodies are not accepted"};
    }
  }

  // Runs a handler body, answering HttpFailure / ProtocolError / Error with {"error": ...}.
  template <typename Body>
  void guarded(const httplib::Request& req, httplib::Response& res, Body&& body) {
    try {
      require_token(req);
      body();
    } catch (const HttpFailure& failure) {
      reply_error(res, failure.status, failure.message);
    } catch (const HttpError& e) {
      reply_error(res, e.status(), e.what());
    } catch (const ProtocolError& e) {
      reply_error(res, 400, e.what());
    } catch (const JsonInputError& e) {
      reply_error(res, 400, e.what());
    } catch (const std::exception& e) {
      reply_error(res, 500, std::string("internal error: ") + e.what());
    }
    if (res.status == 401) res.set_header("WWW-Authenticate", "Bearer");
  }

  // The endpoint label of /metrics' response counter: a small fixed set, whatever the path.
  std::string endpoint_of(const std::string& path) const {
    static const std::regex infer(R"(/v2/models/[^/]+(?:/versions/[^/]+)?/infer)");
    static const std::regex model(R"(/v2/models/[^/]+(?:/versions/[^/]+)?(?:/ready)?)");
    if (path.rfind("/v2/health/", 0) == 0) return "health";
    if (path == "/metrics") return "metrics";
    if (path == "/v2" || path == "/v2/") return "server";
    if (std::regex_match(path, infer)) return "infer";
    if (std::regex_match(path, model)) return "model";
    for (const auto& pattern : extension_patterns) {
      if (std::regex_match(path, pattern)) return "extension";
    }
    return "unknown";
  }

  void check_model(const std::string& name, const std::string& version) const {
    if (name != options.image_model && name != options.text_model) {
      throw HttpFailure{404, "unknown model '" + name + "'; this server has " +
                                 join_names({options.image_model, options.text_model})};
    }
    if (!version.empty() && version != kModelVersion) {
      throw HttpFailure{404, "model '" + name + "' has no version '" + version +
                                 "'; it has version " + kModelVersion};
    }
  }

  // ---- metadata ---------------------------------------------------------------------

  json server_metadata() const {
    json names = json::array({"binary_tensor_data"});
    for (const auto& extension : extensions) names.push_back(extension.name);
    return {{"name", kServerName}, {"version", kServerVersion}, {"extensions", names}};
  }

  json model_metadata(const std::string& name) const {
    const int dim = fm.image->embedding_dim();
    if (name == options.image_model) {
      auto shape = fm.image->input_shape();
      return {{"name", name},
              {"versions", json::array({kModelVersion})},
              {"platform", "edgefm"},
              {"inputs", json::array({{{"name", "images"},
                                       {"datatype", "FP32"},
                                       {"shape", {-1, shape.channels, shape.height, shape.width}}}})},
              {"outputs", json::array({{{"name", "embedding"}, {"datatype", "FP32"}, {"shape", {-1, dim}}},
                                       {{"name", "class_index"}, {"datatype", "INT64"}, {"shape", {-1}}},
                                       {{"name", "class_name"}, {"datatype", "BYTES"}, {"shape", {-1}}},
                                       {{"name", "margin"}, {"datatype", "FP32"}, {"shape", {-1}}}})},
              {"parameters",
               {{"fm_version", fm.version},
                {"arch", fm.image->arch()},
                {"embedding_dim", dim},
                {"input_datatypes", json::array({"FP32", "UINT8"})},
                {"sample_spec", data::to_json(fm.spec())},
                {"class_names", fm.pool.names()},
                {"max_batch_size", options.max_batch},
                {"max_queue_delay_us", options.max_queue_delay_us},
                {"device", options.device}}}};
    }
    return {{"name", name},
            {"versions", json::array({kModelVersion})},
            {"platform", "edgefm"},
            {"inputs", json::array({{{"name", "prompts"}, {"datatype", "BYTES"}, {"shape", {-1}}}})},
            {"outputs", json::array({{{"name", "embedding"}, {"datatype", "FP32"}, {"shape", {-1, dim}}},
                                     {{"name", "class_names"}, {"datatype", "BYTES"}, {"shape", {-1}}}})},
            {"parameters",
             {{"fm_version", fm.version},
              {"embedding_dim", dim},
              {"class_names", fm.pool.names()},
              {"has_text_encoder", fm.text != nullptr}}}};
  }

  // ---- inference --------------------------------------------------------------------

  // The outputs to produce: those requested (checked against `known`), else `defaults`,
  // each with its binary flag.
  std::vector<float> image_rows(const InferRequest& request) const {
    const auto shape = fm.image->input_shape();
    check_images_input(request, options.image_model, shape.channels, shape.height, shape.width);
    return unit_floats(*request.input("images"));
  }

  InferResponse infer_images(const InferRequest& request) {
    const std::string& model = options.image_model;
    std::vector<std::string> known(std::begin(kImageOutputs), std::end(kImageOutputs));
    auto wanted = resolve_outputs(request, model, known, known);
    std::vector<float> rows = image_rows(request);
    const int64_t n = static_cast<int64_t>(rows.size()) / fm.image->input_shape().numel();

    BatchResult result = batcher->submit(std::move(rows)).get();
    metrics.observe_queue_seconds(model, static_cast<double>(result.queue_us) * 1e-6);

    const int dim = fm.image->embedding_dim();
    const auto& pool = fm.pool;
    std::vector<int64_t> class_index(static_cast<size_t>(n));
    std::vector<std::string> class_name(static_cast<size_t>(n));
    std::vector<float> margin(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const float* e = result.outputs.data() + i * dim;
      double best = -2, second = -2;
      size_t best_index = 0;
      for (size_t c = 0; c < pool.size(); ++c) {
        const float* v = pool.vector(c);
        double cosine = 0;
        for (int d = 0; d < dim; ++d) cosine += double{e[d]} * v[d];
        if (cosine > best) {
          second = best;
          best = cosine;
          best_index = c;
        } else if (cosine > second) {
          second = cosine;
        }
      }
      // With one class the runner-up is the lowest possible cosine, -1.
      if (pool.size() == 1) second = -1;
      class_index[i] = static_cast<int64_t>(best_index);
      class_name[i] = pool.name(best_index);
      margin[i] = static_cast<float>(best - second);
    }

    std::vector<Tensor> available;
    available.push_back(Tensor::from_floats("embedding", {n, dim}, result.outputs));
    available.push_back(Tensor::from_int64s("class_index", {n}, class_index));
    available.push_back(Tensor::from_strings("class_name", {n}, std::move(class_name)));
    available.push_back(Tensor::from_floats("margin", {n}, margin));
    InferResponse response;
    response.parameters = {{"queue_time_us", result.queue_us},
                           {"compute_time_us", result.compute_us},
                           {"batch_rows", result.batch_rows},
                           {"batch_requests", result.batch_requests}};
    add_outputs(response, wanted, available);
    return response;
  }

  InferResponse infer_text(const InferRequest& request) {
    const std::string& model = options.text_model;
    const Tensor* prompts = request.input("prompts");
    for (const auto& t : request.inputs) {
      if (t.name != "prompts") {
        throw HttpFailure{400, "model '" + model + "': unexpected input '" + t.name +
                                   "'; it takes 'prompts' (BYTES)"};
      }
    }
    if (prompts != nullptr && prompts->datatype != DataType::bytes) {
      throw HttpFailure{400, std::string("input 'prompts': expected datatype BYTES, got ") +
                                 datatype_name(prompts->datatype)};
    }
    std::vector<std::string> known(std::begin(kTextOutputs), std::end(kTextOutputs));
    std::vector<std::string> defaults = {"class_names"};
    if (prompts != nullptr) defaults.insert(defaults.begin(), "embedding");
    auto wanted = resolve_outputs(request, model, known, defaults);

    std::vector<Tensor> available;
    available.push_back(Tensor::from_strings(
        "class_names", {static_cast<int64_t>(fm.pool.size())}, fm.pool.names()));
    bool embedding_wanted = std::any_of(wanted.begin(), wanted.end(),
                                        [](const RequestedOutput& o) { return o.name == "embedding"; });
    if (embedding_wanted) {
      if (prompts == nullptr) {
        throw HttpFailure{400, "model '" + model + "': output 'embedding' needs input 'prompts'"};
      }
      const int dim = fm.pool.dim();
      const auto n = static_cast<int64_t>(prompts->strings.size());
      std::vector<float> embeddings;
      embeddings.reserve(static_cast<size_t>(n * dim));
      for (const auto& prompt : prompts->strings) {
        if (auto index = fm.pool.index_of(prompt)) {
          embeddings.insert(embeddings.end(), fm.pool.vector(*index), fm.pool.vector(*index) + dim);
          continue;
        }
        if (fm.text == nullptr) {
          throw HttpFailure{400, "model '" + model + "': '" + prompt +
                                     "' is not a class of the pool and this FM has no text encoder"};
        }
        std::vector<float> vector;
        try {
          std::lock_guard lock(text_mutex);
          vector = fm.text->embed(prompt);
        } catch (const Error& e) {
          throw HttpFailure{400, e.what()};
        }
        if (static_cast<int>(vector.size()) != dim) {
          throw HttpFailure{500, "text encoder returned " + std::to_string(vector.size()) +
                                     " values, expected " + std::to_string(dim)};
        }
        embeddings.insert(embeddings.end(), vector.begin(), vector.end());
      }
      available.push_back(Tensor::from_floats("embedding", {n, dim}, embeddings));
    }
    InferResponse response;
    add_outputs(response, wanted, available);
    return response;
  }

  void handle_infer(const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& reader) {
    const auto start = Clock::now();
    const std::string name = req.matches[1];
    const std::string version = req.matches.size() > 2 ? std::string(req.matches[2]) : "";
    const bool known = name == options.image_model || name == options.text_model;
    bool complete = false;
    guarded(req, res, [&] {
      check_model(name, version);
      const std::string body = read_body(req, reader, complete);
      std::optional<size_t> json_size;
      if (req.has_header(kHeaderContentLength)) {
        json_size = parse_header_content_length(req.get_header_value(kHeaderContentLength));
      }
      InferRequest request = decode_request(body, json_size);
      InferResponse response =
          name == options.image_model ? infer_images(request) : infer_text(request);
      response.model_name = name;
      response.model_version = kModelVersion;
      response.id = request.id;
      response.parameters["server_time_us"] = micros_since(start);
      EncodedBody encoded = encode_response(response);
      res.status = 200;
      if (encoded.json_size) {
        res.set_header(kHeaderContentLength, std::to_string(*encoded.json_size));
        res.set_content(std::move(encoded.body), "application/octet-stream");
      } else {
        res.set_content(std::move(encoded.body), "application/json");
      }
    });
    if (!complete) HttpFront::close_after_answer(res);
    const std::string label = known ? name : "_unknown";
    metrics.count_request(label, res.status);
    metrics.observe_request_seconds(label, seconds_since(start));
  }

  std::string metrics_text() const {
    std::string text = metrics.text();
    for (const auto& extension : extensions) {
      if (extension.metrics) text += extension.metrics();
    }
    return text;
  }

  // ---- routes -----------------------------------------------------------------------

  void install_extension_route(const Route& route) {
    auto run = [this, route](const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader* reader) {
      bool complete = reader == nullptr;
      guarded(req, res, [&] {
        HttpRequest request;
        request.method = req.method;
        request.path = req.path;
        for (size_t i = 1; i < req.matches.size(); ++i) request.matches.push_back(req.matches[i]);
        const std::string body = reader ? read_body(req, *reader, complete) : std::string();
        request.body = body;
        for (const auto& [name, value] : req.headers) {
          std::string lower = name;
          for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          request.headers.emplace(std::move(lower), value);
        }
        HttpResponse response;
        route.handler(request, response);
        res.status = response.status;
        for (const auto& [name, value] : response.headers) res.set_header(name, value);
        res.set_content(std::move(response.body), response.content_type);
      });
      if (!complete) HttpFront::close_after_answer(res);
    };
    auto with_body = [run](const httplib::Request& req, httplib::Response& res,
                           const httplib::ContentReader& reader) { run(req, res, &reader); };
    if (route.method == "GET") {
      http.Get(route.pattern, [run](const httplib::Request& req, httplib::Response& res) {
        run(req, res, nullptr);
      });
    } else if (route.method == "POST") {
      http.Post(route.pattern, with_body);
    } else if (route.method == "PUT") {
      http.Put(route.pattern, with_body);
    } else if (route.method == "DELETE") {
      http.Delete(route.pattern, with_body);
    } else {
      fail_expected("extension route " + route.pattern, "method GET, POST, PUT or DELETE",
                    "'" + route.method + "'");
    }
  }

  void install_routes() {
    for (const auto& extension : extensions) {
      for (const auto& route : extension.routes) {
        install_extension_route(route);
        extension_patterns.emplace_back(route.pattern);
      }
    }
    http.Get(R"(/v2/?)", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, [&] { reply_json(res, 200, server_metadata()); });
    });
    http.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
      reply_json(res, 200, {{"live", true}});
    });
    http.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
      bool ready = !stopping.load();
      reply_json(res, ready ? 200 : 503, {{"ready", ready}});
    });
    http.Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)",
             [this](const httplib::Request& req, httplib::Response& res) {
               guarded(req, res, [&] {
                 check_model(req.matches[1], req.matches[2]);
                 reply_json(res, 200, model_metadata(req.matches[1]));
               });
             });
    http.Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/ready)",
             [this](const httplib::Request& req, httplib::Response& res) {
               guarded(req, res, [&] {
                 check_model(req.matches[1], req.matches[2]);
                 bool ready = !stopping.load();
                 reply_json(res, ready ? 200 : 503, {{"name", std::string(req.matches[1])}, {"ready", ready}});
               });
             });
    http.Post(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/infer)",
              [this](const httplib::Request& req, httplib::Response& res,
                     const httplib::ContentReader& reader) { handle_infer(req, res, reader); });
    // Any other path with a body: 404 without reading it (httplib would read it first).
    auto no_endpoint = [](const httplib::Request& req, httplib::Response& res,
                          const httplib::ContentReader&) {
      reply_error(res, 404, "no endpoint " + req.method + " " + req.path);
      if (has_body(req)) HttpFront::close_after_answer(res);
    };
    http.Post(".*", no_endpoint);
    http.Put(".*", no_endpoint);
    http.Patch(".*", no_endpoint);
    http.Delete(".*", no_endpoint);

    // Framing is checked before routing, so a bad or oversized body is never read.
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      try {
        check_framing(req);
      } catch (const HttpFailure& failure) {
        reply_error(res, failure.status, failure.message);
        HttpFront::close_after_answer(res);
        if (failure.status == 413) {
          static const std::regex infer(R"(/v2/models/([^/]+)(?:/versions/[^/]+)?/infer)");
          std::smatch match;
          if (std::regex_match(req.path, match, infer)) {
            std::string name = match[1];
            bool known = name == options.image_model || name == options.text_model;
            metrics.count_request(known ? name : "_unknown", 413);
          }
        }
        return httplib::Server::HandlerResponse::Handled;
      }
      // A body nobody will read (GET with a body): close after the answer.
      if (has_body(req) && req.method != "POST" && req.method != "PUT" && req.method != "PATCH" &&
          req.method != "DELETE") {
        HttpFront::close_after_answer(res);
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.status = 200;
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });

    // Answers that httplib produces itself (no route, body over the limit, unreadable
    // request) get the protocol's error body too; handler answers already have one.
    http.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string message;
      if (res.status == 413) {
        message = too_large_message(req.get_header_value("Content-Length"));
      } else if (res.status == 404) {
        message = "no endpoint " + req.method + " " + req.path;
      } else {
        message = "HTTP " + std::to_string(res.status) + " for " + req.method + " " + req.path;
      }
      res.set_content(error_body(message), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));
    // httplib calls the logger for every answer it writes, its own errors included.
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.count_response(endpoint_of(req.path), res.status);
    });
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
          std::string message = "internal error";
          try {
            if (error) std::rethrow_exception(error);
          } catch (const std::exception& e) {
            message += std::string(": ") + e.what();
          } catch (...) {
          }
          reply_error(res, 500, message);
        });
  }
};

std::string bearer_token_of(const std::string& authorization) {
  // The scheme is case-insensitive (RFC 9110 11.1); spaces may follow it.
  const size_t space = authorization.find(' ');
  std::string scheme = authorization.substr(0, space);
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer" || space == std::string::npos) return "";
  const size_t token_at = authorization.find_first_not_of(' ', space);
  return token_at == std::string::npos ? "" : authorization.substr(token_at);
}

std::optional<std::string> HttpRequest::header(const std::string& name) const {
  std::string lower = name;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = headers.find(lower);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

CloudServer::CloudServer(models::FoundationModel fm, ServerOptions options,
                         std::vector<ServerExtension> extensions)
    : impl_(std::make_unique<Impl>(std::move(fm), std::move(options))) {
  auto& s = *impl_;
  s.extensions = std::move(extensions);
  const auto& o = s.options;
  if (!s.fm.image) throw Error("cloud server: the FM has no image encoder");
  if (s.fm.pool.empty()) throw Error("cloud server: the FM's class pool is empty");
  if (s.fm.pool.dim() != s.fm.image->embedding_dim()) {
    fail_expected("cloud server: FM pool dimension",
                  std::to_string(s.fm.image->embedding_dim()) + " (the image embedding)",
                  std::to_string(s.fm.pool.dim()));
  }
  if (o.threads < 1) fail_expected("cloud server threads", "at least 1", std::to_string(o.threads));
  if (o.max_request_bytes < 1) fail_expected("cloud server max_request_bytes", "at least 1", "0");
  if (o.max_connections < 1) fail_expected("cloud server max_connections", "at least 1", "0");
  if (o.max_queued_requests < 1) {
    fail_expected("cloud server max_queued_requests", "at least 1", "0");
  }
  const std::pair<const char*, double> timeouts[] = {
      {"header_timeout_s", o.header_timeout_s},
      {"io_timeout_s", o.io_timeout_s},
      {"request_timeout_s", o.request_timeout_s},
      {"keep_alive_timeout_s", static_cast<double>(o.keep_alive_timeout_s)}};
  for (const auto& [name, seconds] : timeouts) {
    if (!(seconds > 0.0)) {
      fail_expected(std::string("cloud server ") + name, "> 0 s", std::to_string(seconds));
    }
  }
  if (o.image_model.empty() || o.text_model.empty() || o.image_model == o.text_model) {
    fail_expected("cloud server model names", "two different non-empty names",
                  "'" + o.image_model + "' and '" + o.text_model + "'");
  }
  if (o.port < 0 || o.port > 65535) {
    fail_expected("cloud server port", "0..65535", std::to_string(o.port));
  }

  BatcherOptions batching = batcher_default_options();
  batching.max_batch_size = o.max_batch;
  batching.max_queue_delay_us = o.max_queue_delay_us;
  batching.workers = o.batch_workers;
  auto encoder = s.fm.image;
  s.batcher = std::make_unique<DynamicBatcher>(
      [encoder](const float* in, int64_t rows, float* out) { encoder->embed(in, rows, out); },
      encoder->input_shape().numel(), encoder->embedding_dim(), batching,
      [impl = impl_.get()](const BatchInfo& info) {
        impl->metrics.observe_batch_rows(impl->options.image_model, info.rows);
      });

  // Connections are handled by HttpFront (cloud/http_front.h): its workers, timeouts and
  // load shedding replace httplib's thread pool and keep-alive settings.
  s.http.set_tcp_nodelay(true);
  // httplib's default also sets SO_REUSEPORT, which lets a second server bind the same port
  // and silently take half the connections; SO_REUSEADDR alone still allows a quick restart.
  s.http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // Only for the Keep-Alive header httplib writes ("timeout=5, max=5" by default); HttpFront
  // enforces the idle timeout and serves any number of requests per connection.
  s.http.set_keep_alive_max_count(1000000);
  s.http.set_keep_alive_timeout(o.keep_alive_timeout_s);
  s.http.set_payload_max_length(o.max_request_bytes);
  s.install_routes();

  if (o.port == 0) {
    s.port = s.http.bind_to_any_port(o.host);
    if (s.port < 0) throw Error("cloud server: cannot bind an ephemeral port on '" + o.host + "'");
  } else {
    if (!s.http.bind_to_port(o.host, o.port)) {
      throw Error("cloud server: cannot bind " + o.host + ":" + std::to_string(o.port) +
                  " (in use, or not an address of this machine)");
    }
    s.port = o.port;
  }
  s.http.start();
  s.listener = std::thread([impl = impl_.get()] {
    impl->http.listen_after_bind();
    impl->listen_returned = true;
  });
  // stop() is a no-op until the listener runs; wait for it so an early stop() cannot hang.
  while (!s.http.is_running() && !s.listen_returned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

CloudServer::~CloudServer() { stop(); }

int CloudServer::port() const { return impl_->port; }
const std::string& CloudServer::host() const { return impl_->options.host; }
std::string CloudServer::url() const { return "http://" + host() + ":" + std::to_string(port()); }

void CloudServer::stop() {
  std::call_once(impl_->stop_once, [this] {
    impl_->stopping = true;
    // Requests in flight may wait in the batcher for company that will not come.
    impl_->batcher->stop_waiting();
    impl_->http.stop();
    if (impl_->listener.joinable()) impl_->listener.join();
    impl_->http.shutdown();  // answers what is queued, closes every connection
    impl_->batcher->stop();
  });
}

bool CloudServer::running() const { return !impl_->stopping.load(); }

BatcherStats CloudServer::batcher_stats() const { return impl_->batcher->stats(); }

std::string CloudServer::metrics_text() const { return impl_->metrics_text(); }

}  // namespace edgefm::cloud
