// The public facade (include/edgefm/edge.h) over the edge runtime (edge/runtime.h): samples
// get ids in submission order; each waiting caller (a promise or a callback) is kept by id
// until the runtime's sink hands its answer over, as the local endpoint (edge/endpoint.cpp)
// does for its requests.
#include "edgefm/edge.h"

#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <utility>
#include <variant>

#include "common/error.h"
#include "edge/runtime.h"

namespace edgefm {
namespace {

EdgeAnswer public_answer(const edge::Answer& a) {
  EdgeAnswer out;
  out.id = a.id;
  out.label = a.prediction;
  out.score = a.score;
  out.route = edge::answer_route_name(a.route);
  out.fallback_reason = a.fallback_reason;
  out.latency_ms = a.latency_ms;
  out.model_version = a.model_version;
  return out;
}

edge::RuntimeOptions runtime_options(const EdgeConfig& c) {
  edge::RuntimeOptions o = edge::runtime_default_options();
  o.policy = edge::parse_policy(c.policy);
  if (c.server.empty() && o.policy != edge::Policy::edge_only) {
    throw Error("EdgeConfig: policy '" + c.policy + "' needs a server (or use policy 'edge-only')");
  }
  if (!c.server.empty()) o.client.url = c.server;
  o.client.token = c.token;
  if (!(c.l_app_ms > 0.0)) fail_expected("EdgeConfig l_app_ms", "a positive number", std::to_string(c.l_app_ms));
  o.l_app_ms = c.l_app_ms;
  o.fixed_threshold = c.threshold;
  if (c.cloud_timeout_ms < 0.0) {
    fail_expected("EdgeConfig cloud_timeout_ms", "0 or more", std::to_string(c.cloud_timeout_ms));
  }
  o.cloud_timeout_ms = c.cloud_timeout_ms;
  if (c.max_in_flight < 1) {
    fail_expected("EdgeConfig max_in_flight", "at least 1", std::to_string(c.max_in_flight));
  }
  o.max_in_flight = c.max_in_flight;
  if (c.nominal_rtt_ms > 0.0) o.estimator.nominal_rtt_ms = c.nominal_rtt_ms;
  if (c.nominal_uplink_mbps > 0.0) o.estimator.nominal_uplink_bps = c.nominal_uplink_mbps * 1e6;
  o.audit_fraction = c.audit_fraction;
  o.audit_per_minute = c.audit_per_minute;
  o.cloud_queries_per_minute = c.cloud_queries_per_minute;
  return o;
}

}  // namespace

struct Edge::Impl {
  using Waiter = std::variant<std::promise<EdgeAnswer>, Callback>;

  // Declared before the runtime, so they outlive it: its destructor drains into the sink.
  std::mutex pending_mutex;
  std::map<uint64_t, Waiter> pending;
  std::mutex process_mutex;  // ids in submission order, one process() at a time
  std::atomic<uint64_t> next_id{0};
  std::unique_ptr<edge::EdgeRuntime> runtime;

  explicit Impl(const EdgeConfig& config) {
    edge::RuntimeOptions options = runtime_options(config);
    const bool needs_calibration = options.policy == edge::Policy::edgefm ||
                                   (options.policy == edge::Policy::fixed && std::isnan(config.threshold));
    edge::EdgeModel model = edge::load_edge_model(config.student, needs_calibration);
    runtime = std::make_unique<edge::EdgeRuntime>(std::move(model), std::move(options),
                                                  [this](const edge::Answer& a) { on_answer(a); });
  }

  void on_answer(const edge::Answer& a) {
    Waiter waiter;
    {
      std::lock_guard<std::mutex> lock(pending_mutex);
      auto it = pending.find(a.id);
      if (it == pending.end()) return;
      waiter = std::move(it->second);
      pending.erase(it);
    }
    EdgeAnswer answer = public_answer(a);
    if (auto* promise = std::get_if<std::promise<EdgeAnswer>>(&waiter)) {
      promise->set_value(std::move(answer));
    } else if (auto& callback = std::get<Callback>(waiter)) {
      try {
        callback(answer);
      } catch (...) {
        // Documented: an exception out of the application's callback is dropped.
      }
    }
  }

  void submit(std::vector<uint8_t> pixels, Waiter waiter) {
    std::lock_guard<std::mutex> lock(process_mutex);
    edge::Sample sample;
    sample.id = next_id.load();
    sample.pixels = std::move(pixels);
    sample.arrival = edge::Clock::now();
    {
      std::lock_guard<std::mutex> pending_lock(pending_mutex);
      pending.emplace(sample.id, std::move(waiter));
    }
    try {
      runtime->process(std::move(sample));
    } catch (...) {
      std::lock_guard<std::mutex> pending_lock(pending_mutex);
      pending.erase(next_id.load());
      throw;
    }
    ++next_id;
  }
};

Edge::Edge(const EdgeConfig& config) : impl_(std::make_unique<Impl>(config)) {}
Edge::~Edge() = default;
Edge::Edge(Edge&&) noexcept = default;
Edge& Edge::operator=(Edge&&) noexcept = default;

std::future<EdgeAnswer> Edge::submit(std::vector<uint8_t> sample) {
  std::promise<EdgeAnswer> promise;
  std::future<EdgeAnswer> future = promise.get_future();
  impl_->submit(std::move(sample), std::move(promise));
  return future;
}

void Edge::submit(std::vector<uint8_t> sample, Callback on_answer) {
  impl_->submit(std::move(sample), std::move(on_answer));
}

std::vector<int64_t> Edge::input_shape() const {
  const auto shape = impl_->runtime->model()->encoder->input_shape();
  return {shape.channels, shape.height, shape.width};
}

std::vector<std::string> Edge::classes() const { return impl_->runtime->model()->pool.names(); }

std::string Edge::model_version() const { return impl_->runtime->model()->version; }

EdgeStats Edge::stats() const {
  const edge::RuntimeStats s = impl_->runtime->stats();
  EdgeStats out;
  out.submitted = static_cast<int64_t>(impl_->next_id.load());
  out.answered = s.answered;
  out.edge = s.edge;
  out.cloud = s.cloud;
  out.fallback = s.fallback;
  out.budget = s.budget;
  out.audits = s.audits;
  out.audit_disagreements = s.audit_disagreements;
  out.threshold = s.threshold;
  out.rtt_ms = s.network.rtt_ms;
  return out;
}

void Edge::drain() { impl_->runtime->drain(); }

}  // namespace edgefm
