#include "cloud/metrics.h"

#include <charconv>
#include <map>
#include <mutex>
#include <string_view>
#include <vector>

#include "common/error.h"

#ifdef EDGEFM_HAVE_PROMETHEUS_CPP
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#endif

namespace edgefm::cloud {

namespace {

const char* kHelpRequests = "Inference requests by model and HTTP status code.";
const char* kHelpLatency = "Time from receiving an inference request to answering it.";
const char* kHelpBatchSize = "Rows (images) per call of the model by the dynamic batcher.";
const char* kHelpQueueTime = "Time a request waited in the batcher's queue.";
const char* kHelpResponses = "HTTP answers by endpoint and status code, errors included.";

const std::vector<double> kLatencyBuckets = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                                             0.1,    0.2,   0.5,   1.0,   2.0,  5.0};
const std::vector<double> kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};
const std::vector<double> kQueueBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.002,
                                           0.005,  0.01,    0.02,   0.05,  0.1};

// A small writer of the Prometheus text format: counters and histograms with labels.
class BuiltinMetrics {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  void increment(const std::string& name, const Labels& labels) {
    std::lock_guard lock(mutex_);
    counters_[name][labels] += 1;
  }

  void observe(const std::string& name, const std::vector<double>& buckets, const Labels& labels,
               double value) {
    std::lock_guard lock(mutex_);
    auto& h = histograms_[name][labels];
    if (h.counts.empty()) h.counts.assign(buckets.size(), 0);
    for (size_t i = 0; i < buckets.size(); ++i) {
      if (value <= buckets[i]) h.counts[i] += 1;
    }
    h.count += 1;
    h.sum += value;
  }

  std::string text(const std::vector<std::pair<std::string, std::string>>& help,
                   const std::map<std::string, std::vector<double>>& buckets) const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [name, text] : help) {
      bool is_histogram = buckets.count(name) > 0;
      out += "# HELP " + name + " " + text + "\n";
      out += "# TYPE " + name + (is_histogram ? " histogram\n" : " counter\n");
      if (!is_histogram) {
        auto family = counters_.find(name);
        if (family == counters_.end()) continue;
        for (const auto& [labels, value] : family->second) {
          out += name + render(labels) + " " + std::to_string(value) + "\n";
        }
        continue;
      }
      auto family = histograms_.find(name);
      if (family == histograms_.end()) continue;
      const auto& bounds = buckets.at(name);
      for (const auto& [labels, h] : family->second) {
        for (size_t i = 0; i < bounds.size(); ++i) {
          Labels with_le = labels;
          with_le.emplace_back("le", number(bounds[i]));
          out += name + "_bucket" + render(with_le) + " " + std::to_string(h.counts[i]) + "\n";
        }
        Labels with_inf = labels;
        with_inf.emplace_back("le", "+Inf");
        out += name + "_bucket" + render(with_inf) + " " + std::to_string(h.count) + "\n";
        out += name + "_sum" + render(labels) + " " + number(h.sum) + "\n";
        out += name + "_count" + render(labels) + " " + std::to_string(h.count) + "\n";
      }
    }
    return out;
  }

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // cumulative: observations <= bound i
    uint64_t count = 0;
    double sum = 0;
  };

  static std::string number(double value) {
    char buffer[400];
    double magnitude = value < 0 ? -value : value;
    // Plain decimals ("0.0005", not "5e-04") where they stay short.
    auto format = (magnitude == 0 || (magnitude >= 1e-9 && magnitude < 1e15))
                      ? std::chars_format::fixed
                      : std::chars_format::general;
    auto result = std::to_chars(buffer, buffer + sizeof buffer, value, format);
    return std::string(buffer, result.ptr);
  }

  static std::string escape(const std::string& value) {
    std::string out;
    for (char c : value) {
      if (c == '\\') out += "\\\\";
      else if (c == '"') out += "\\\"";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    return out;
  }

  static std::string render(const Labels& labels) {
    if (labels.empty()) return "";
    std::string out = "{";
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) out += ",";
      out += labels[i].first + "=\"" + escape(labels[i].second) + "\"";
    }
    return out + "}";
  }

  mutable std::mutex mutex_;
  std::map<std::string, std::map<Labels, uint64_t>> counters_;
  std::map<std::string, std::map<Labels, Histogram>> histograms_;
};

}  // namespace

struct ServerMetrics::Impl {
  MetricsBackend backend = MetricsBackend::builtin;
  BuiltinMetrics builtin;
#ifdef EDGEFM_HAVE_PROMETHEUS_CPP
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>* requests = nullptr;
  prometheus::Family<prometheus::Histogram>* latency = nullptr;
  prometheus::Family<prometheus::Histogram>* batch_size = nullptr;
  prometheus::Family<prometheus::Histogram>* queue_time = nullptr;
  prometheus::Family<prometheus::Counter>* responses = nullptr;
#endif

  void observe(const char* name, const std::vector<double>& buckets, const std::string& model,
               double value) {
#ifdef EDGEFM_HAVE_PROMETHEUS_CPP
    if (backend == MetricsBackend::prometheus_cpp) {
      std::string_view which = name;
      auto* family = which == kMetricLatency     ? latency
                     : which == kMetricBatchSize ? batch_size
                                                 : queue_time;
      family->Add({{"model", model}}, buckets).Observe(value);
      return;
    }
#endif
    builtin.observe(name, buckets, {{"model", model}}, value);
  }
};

ServerMetrics::ServerMetrics(MetricsBackend backend) : impl_(std::make_unique<Impl>()) {
  if (backend == MetricsBackend::prometheus_cpp && !has_prometheus_cpp()) {
    throw Error("metrics: this build has no prometheus-cpp; use the builtin writer");
  }
  impl_->backend = (backend == MetricsBackend::automatic)
                       ? (has_prometheus_cpp() ? MetricsBackend::prometheus_cpp
                                               : MetricsBackend::builtin)
                       : backend;
#ifdef EDGEFM_HAVE_PROMETHEUS_CPP
  if (impl_->backend == MetricsBackend::prometheus_cpp) {
    auto& r = *(impl_->registry = std::make_shared<prometheus::Registry>());
    impl_->requests = &prometheus::BuildCounter().Name(kMetricRequests).Help(kHelpRequests).Register(r);
    impl_->latency = &prometheus::BuildHistogram().Name(kMetricLatency).Help(kHelpLatency).Register(r);
    impl_->batch_size =
        &prometheus::BuildHistogram().Name(kMetricBatchSize).Help(kHelpBatchSize).Register(r);
    impl_->queue_time =
        &prometheus::BuildHistogram().Name(kMetricQueueTime).Help(kHelpQueueTime).Register(r);
    impl_->responses =
        &prometheus::BuildCounter().Name(kMetricResponses).Help(kHelpResponses).Register(r);
  }
#endif
}

ServerMetrics::~ServerMetrics() = default;

bool ServerMetrics::has_prometheus_cpp() {
#ifdef EDGEFM_HAVE_PROMETHEUS_CPP
  return true;
#else
  return false;
#endif
}

MetricsBackend ServerMetrics::backend() const { return impl_->backend; }

void ServerMetrics::count_request(const std::string& model, int status) {
#ifdef EDGEFM_HAVE_PROMETHEUS_CPP
  if (impl_->backend == MetricsBackend::prometheus_cpp) {
    impl_->requests->Add({{"model", model}, {"code", std::to_string(status)}}).Increment();
    return;
  }
#endif
  impl_->builtin.increment(kMetricRequests, {{"model", model}, {"code", std::to_string(status)}});
}

void ServerMetrics::count_response(const std::string& endpoint, int status) {
#ifdef EDGEFM_HAVE_PROMETHEUS_CPP
  if (impl_->backend == MetricsBackend::prometheus_cpp) {
    impl_->responses->Add({{"endpoint", endpoint}, {"code", std::to_string(status)}}).Increment();
    return;
  }
#endif
  impl_->builtin.increment(kMetricResponses,
                           {{"endpoint", endpoint}, {"code", std::to_string(status)}});
}

void ServerMetrics::observe_request_seconds(const std::string& model, double seconds) {
  impl_->observe(kMetricLatency, kLatencyBuckets, model, seconds);
}

void ServerMetrics::observe_batch_rows(const std::string& model, int64_t rows) {
  impl_->observe(kMetricBatchSize, kBatchBuckets, model, static_cast<double>(rows));
}

void ServerMetrics::observe_queue_seconds(const std::string& model, double seconds) {
  impl_->observe(kMetricQueueTime, kQueueBuckets, model, seconds);
}

std::string ServerMetrics::text() const {
#ifdef EDGEFM_HAVE_PROMETHEUS_CPP
  if (impl_->backend == MetricsBackend::prometheus_cpp) {
    return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
  }
#endif
  return impl_->builtin.text({{kMetricRequests, kHelpRequests},
                              {kMetricLatency, kHelpLatency},
                              {kMetricBatchSize, kHelpBatchSize},
                              {kMetricQueueTime, kHelpQueueTime},
                              {kMetricResponses, kHelpResponses}},
                             {{kMetricLatency, kLatencyBuckets},
                              {kMetricBatchSize, kBatchBuckets},
                              {kMetricQueueTime, kQueueBuckets}});
}

}  // namespace edgefm::cloud
