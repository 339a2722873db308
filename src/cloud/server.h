#pragma once
// The cloud service: the FM behind the Open Inference Protocol (KServe v2) over HTTP, with
// dynamic batching of image inference, bearer-token auth, a request-size limit and
// Prometheus metrics. Endpoints, tensors and error codes: docs/cloud.md.
#include <cstdint>
#include <memory>
#include <string>

#include "cloud/batcher.h"
#include "models/foundation.h"

namespace edgefm::cloud {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                              // 0: an ephemeral port (read it with port())
  std::string token;                         // empty: no authentication
  size_t max_request_bytes = 16u << 20;      // larger bodies are answered 413
  int max_batch = 32;                        // rows (images) per model call; 1: no batching
  int64_t max_queue_delay_us = 2000;         // longest wait for a batch to fill
  int batch_workers = 1;                     // threads calling the image encoder
  int threads = 64;                          // HTTP worker threads = connections served at once
  int keep_alive_timeout_s = 5;              // idle keep-alive connections close after this
  std::string image_model = "fm";            // model name of the image encoder
  std::string text_model = "text";           // model name of the text side
  std::string device = "cpu";                // where the FM runs; reported in metadata
};
ServerOptions server_default_options();

class CloudServer {
 public:
  // Binds host:port and starts serving on background threads before returning. Throws
  // Error when the FM has no image encoder or an empty pool, on bad options, or when the
  // address cannot be bound.
  CloudServer(models::FoundationModel fm, ServerOptions options);
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
