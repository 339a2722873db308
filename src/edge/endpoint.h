#pragma once
// The edge as a local inference endpoint (`edgefm edge --listen`): an application on the
// device posts samples over the Open Inference Protocol, the same protocol as the cloud
// service, and gets each one's answer as the runtime gives it: from the student, from the
// cloud FM, or from the student as a fallback. The endpoint only feeds the runtime and waits
// for its answers; routing, uploads, audits and model swaps go on exactly as in replay.
//
//   GET  /v2/health/live, /v2/health/ready, /v2, /v2/models/{model}[/ready]
//   POST /v2/models/{model}/infer     (JSON tensors or binary tensor data)
//   GET  /metrics                      (Prometheus text: routes, fallbacks by reason,
//                                       threshold, network estimate, model version, queue)
//
// An inference request has one input: `images` (UINT8 [N,C,H,W], or [N,H,W] for one
// channel; FP32 in [0, 1] also taken), the student's input tensor; or `files` (BYTES [N]),
// encoded image or audio files decoded and preprocessed by the student's sample spec. The
// answer has, per sample, `class_name` (BYTES), `score` (FP32, the routing score), `route`
// (BYTES: edge, cloud, fallback, budget), `fallback_reason` (BYTES, empty unless a fallback),
// `latency_ms` (FP32, from arrival to answer) and `model_version` (BYTES).
#include <cstddef>
#include <memory>
#include <string>

#include "edge/runtime.h"

namespace edgefm::edge {

struct EndpointOptions {
  std::string host = "127.0.0.1";  // the device's applications only, by default
  int port = 8080;                 // 0: an ephemeral port (read it with port())
  std::string model_name = "edge";
  size_t max_request_bytes = 16u << 20;  // larger bodies are answered 413
  size_t max_batch = 64;                 // samples per request at most (400 beyond)
  int threads = 8;                       // requests served at once
};

class EdgeEndpoint {
 public:
  // Binds and starts serving; throws Error when the address cannot be bound. `runtime` must
  // outlive the endpoint, and every answer it gives must be passed to on_answer().
  EdgeEndpoint(EdgeRuntime& runtime, EndpointOptions options);
  ~EdgeEndpoint();  // stop()
  EdgeEndpoint(const EdgeEndpoint&) = delete;
  EdgeEndpoint& operator=(const EdgeEndpoint&) = delete;

  // From the runtime's answer sink (any thread): completes the request waiting for it and
  // counts it for /metrics. Answers of samples that did not come through the endpoint are
  // only counted.
  void on_answer(const Answer& answer);

  int port() const;
  std::string url() const;  // "http://<host>:<port>"
  // Stops accepting requests, answers those in flight, joins the threads. Idempotent.
  void stop();

  // The /metrics text.
  std::string metrics_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm::edge
