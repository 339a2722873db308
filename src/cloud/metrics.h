#pragma once
// The cloud service's Prometheus metrics, served as text (exposition format 0.0.4) at
// /metrics. Rendered by prometheus-cpp's core (Registry + TextSerializer) when the build
// found it, else by a small built-in writer of the same format; both are kept so a build
// without prometheus-cpp (the GPU machine) serves the same series.
#include <cstdint>
#include <memory>
#include <string>

namespace edgefm::cloud {

// Series (label names in braces):
inline constexpr const char* kMetricRequests = "edgefm_inference_requests_total";  // {model,code}
inline constexpr const char* kMetricLatency =
    "edgefm_inference_request_duration_seconds";                                  // {model}
inline constexpr const char* kMetricBatchSize = "edgefm_batch_size";              // {model}
inline constexpr const char* kMetricQueueTime = "edgefm_batch_queue_duration_seconds";  // {model}
// Every HTTP answer the server writes, whatever produced it (a route, an error of the HTTP
// layer, load shedding): endpoint is infer, model, server, health, metrics, extension or
// unknown.
inline constexpr const char* kMetricResponses = "edgefm_http_responses_total";  // {endpoint,code}

enum class MetricsBackend { automatic, prometheus_cpp, builtin };

class ServerMetrics {
 public:
  // automatic: prometheus-cpp when compiled in, else builtin. Asking for prometheus_cpp in
  // a build without it throws Error.
  explicit ServerMetrics(MetricsBackend backend = MetricsBackend::automatic);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  static bool has_prometheus_cpp();
  MetricsBackend backend() const;

  // All thread-safe.
  void count_request(const std::string& model, int status);
  void count_response(const std::string& endpoint, int status);
  void observe_request_seconds(const std::string& model, double seconds);
  void observe_batch_rows(const std::string& model, int64_t rows);
  void observe_queue_seconds(const std::string& model, double seconds);

  std::string text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm::cloud
