#pragma once
// The cloud service: the FM behind the Open Inference Protocol (KServe v2) over HTTP, with
// dynamic batching of image inference, bearer-token auth, a request-size limit and
// Prometheus metrics. Endpoints, tensors and error codes: docs/cloud.md.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/batcher.h"
#include "common/error.h"
#include "models/foundation.h"

namespace edgefm::cloud {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                              // 0: an ephemeral port (read it with port())
  std::string token;                         // empty: no authentication (unless accept_token)
  // Tokens accepted beside `token` (a device registry's, cloud/device_registry.h); when set,
  // every request needs one of them or `token`.
  std::function<bool(const std::string& token)> accept_token;
  size_t max_request_bytes = 16u << 20;      // larger bodies are answered 413
  int max_batch = 32;                        // rows (images) per model call; 1: no batching
  int64_t max_queue_delay_us = 2000;         // longest wait for a batch to fill
  int batch_workers = 1;                     // threads calling the image encoder
  int threads = 64;                          // HTTP worker threads = requests handled at once
  int keep_alive_timeout_s = 5;              // idle keep-alive connections close after this
  // Slow and many clients (cloud/http_front.h): connections wait for a complete request
  // head without holding a worker; health checks and /metrics have a lane of their own.
  double header_timeout_s = 10;              // request line + headers must arrive within (408)
  double io_timeout_s = 10;                  // each read/write while serving a request
  double request_timeout_s = 60;             // reading one request body, in all
  size_t max_connections = 512;              // more open connections are refused with 503
  size_t max_queued_requests = 256;          // more requests waiting for a worker: 503
  std::string image_model = "fm";            // model name of the image encoder
  std::string text_model = "text";           // model name of the text side
  std::string device = "cpu";                // where the FM runs; reported in metadata
};
ServerOptions server_default_options();

// ---- extensions: more endpoints beside the OIP ones (e.g. the customization service) ------
// They get the same bearer-token check, request-size limit and {"error": ...} answers.

// An answer other than success from an extension route, sent as {"error": what()}.
class HttpError : public Error {
 public:
  HttpError(int status, const std::string& message) : Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct HttpRequest {
  std::string method;
  std::string path;
  std::vector<std::string> matches;  // the route pattern's capture groups, in order
  std::string_view body;             // valid while the handler runs
  std::map<std::string, std::string> headers;  // names lower-cased
  std::optional<std::string> header(const std::string& name) const;  // any case
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::map<std::string, std::string> headers;
};

// A handler throws HttpError for a chosen status; any other exception is answered 500.
struct Route {
  std::string method;   // GET, POST, PUT or DELETE
  std::string pattern;  // ECMAScript regex matched against the whole path
  std::function<void(const HttpRequest&, HttpResponse&)> handler;
};

struct ServerExtension {
  std::string name;  // listed in GET /v2 "extensions"
  std::vector<Route> routes;
  std::function<std::string()> metrics;  // Prometheus text appended to /metrics (optional)
};

// The token of an "Authorization: Bearer <token>" value (scheme in any case); empty when the
// value is not a bearer credential.
std::string bearer_token_of(const std::string& authorization);

class CloudServer {
 public:
  // Binds host:port and starts serving on background threads before returning. Throws
  // Error when the FM has no image encoder or an empty pool, on bad options, or when the
  // address cannot be bound. `extensions` add routes (their handlers must outlive stop()).
  CloudServer(models::FoundationModel fm, ServerOptions options,
              std::vector<ServerExtension> extensions = {});
  ~CloudServer();  // stop()
  CloudServer(const CloudServer&) = delete;
  CloudServer& operator=(const CloudServer&) = delete;

  int port() const;
  const std::string& host() const;
  std::string url() const;  // "http://<host>:<port>"

  // Stops accepting connections, finishes requests in flight (and the batches they wait
  // for), then returns. Idempotent; safe to call from any thread but a request handler.
  void stop();
  bool running() const;

  BatcherStats batcher_stats() const;
  std::string metrics_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm::cloud
