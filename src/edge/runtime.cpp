#include "edge/runtime.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "common/error.h"
#include "customize/select.h"
#include "route/similarity.h"

namespace edgefm::edge {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double seconds_since(Clock::time_point start, Clock::time_point t) {
  return std::chrono::duration<double>(t - start).count();
}

Clock::duration from_ms(double ms) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(ms));
}

json threshold_json(double threshold) {
  if (std::isinf(threshold)) return threshold < 0 ? "-inf" : "+inf";
  return threshold;
}

// |now - then| beyond step x max(|then|, floor): "moved" for the re-search.
bool moved(double now, double then, double step, double floor) {
  return std::abs(now - then) > step * std::max(std::abs(then), floor);
}

}  // namespace

std::vector<std::string> policy_names() { return {"edge-only", "cloud-only", "fixed", "edgefm"}; }

const char* policy_name(Policy policy) {
  switch (policy) {
    case Policy::edge_only: return "edge-only";
    case Policy::cloud_only: return "cloud-only";
    case Policy::fixed: return "fixed";
    case Policy::edgefm: return "edgefm";
  }
  return "?";
}

Policy parse_policy(const std::string& name) {
  if (name == "edge-only") return Policy::edge_only;
  if (name == "cloud-only") return Policy::cloud_only;
  if (name == "fixed") return Policy::fixed;
  if (name == "edgefm") return Policy::edgefm;
  fail_expected("policy", "one of edge-only, cloud-only, fixed, edgefm", "'" + name + "'");
}

const char* answer_route_name(AnswerRoute route) {
  switch (route) {
    case AnswerRoute::edge: return "edge";
    case AnswerRoute::cloud: return "cloud";
    case AnswerRoute::fallback: return "fallback";
    case AnswerRoute::budget: return "budget";
  }
  return "?";
}

EdgeModel edge_model_from_student(models::Student student, bool require_calibration) {
  const std::string context = "student artifact meta";
  if (!student.encoder) fail_expected("student", "an image encoder", "none");
  if (student.pool.empty()) fail_expected("student", "a non-empty class pool", "an empty pool");
  if (student.encoder->embedding_dim() != student.pool.dim()) {
    fail_expected("student encoder and pool", "equal embedding dimensions",
                  std::to_string(student.encoder->embedding_dim()) + " vs " +
                      std::to_string(student.pool.dim()));
  }
  EdgeModel model;
  model.encoder = std::move(student.encoder);
  model.pool = std::move(student.pool);
  const json& meta = student.meta;
  if (meta.is_object() && meta.contains("score")) {
    model.score = route::score_from_json(meta.at("score"), context + " 'score'");
  } else {
    model.score = route::make_score("margin");
  }
  if (meta.is_object() && meta.contains("calibration")) {
    model.calibration =
        route::CalibrationProfile::from_json(meta.at("calibration"), context + " 'calibration'");
  } else if (require_calibration) {
    throw Error(context + ": missing field 'calibration' (the routing profile written by "
                          "`edgefm customize`)");
  }
  if (meta.is_object() && meta.contains("t_edge_ms")) {
    model.t_edge_ms = json_field<double>(meta, "t_edge_ms", context);
    if (!(model.t_edge_ms >= 0.0)) {
      fail_expected(context + " 't_edge_ms'", "a time >= 0", std::to_string(model.t_edge_ms));
    }
  }
  if (meta.is_object() && meta.contains("version")) {
    const json& v = meta.at("version");
    model.version = v.is_string() ? v.get<std::string>() : v.dump();
  }
  return model;
}

EdgeModel load_edge_model(const std::string& student_path, bool require_calibration) {
  EdgeModel model = edge_model_from_student(models::load_student(student_path), require_calibration);
  const std::string unsound = models::unsound_reason(*model.encoder, model.pool.dim());
  if (!unsound.empty()) throw Error(student_path + " is unsound and must not serve: " + unsound);
  return model;
}

RuntimeOptions runtime_default_options() { return RuntimeOptions{}; }

double effective_cloud_timeout_ms(const RuntimeOptions& options) {
  if (options.cloud_timeout_ms > 0.0) return options.cloud_timeout_ms;
  return std::max(options.timeout_factor * options.l_app_ms, options.min_cloud_timeout_ms);
}

json answer_to_json(const Answer& a) {
  json j = {{"id", a.id},
            {"prediction", a.prediction},
            {"prediction_index", a.prediction_index},
            {"route", answer_route_name(a.route)},
            {"score", a.score},
            {"threshold", threshold_json(a.threshold)},
            {"arrival_s", a.arrival_s},
            {"finish_s", a.finish_s},
            {"latency_ms", a.latency_ms},
            {"edge_ms", a.edge_ms},
            {"cloud_ms", a.cloud_ms},
            {"server_ms", a.server_ms},
            {"bytes_sent", a.bytes_sent},
            {"est_rtt_ms", a.est_rtt_ms},
            {"est_uplink_bps", a.est_uplink_bps},
            {"truth", a.truth.empty() ? json() : json(a.truth)},
            {"correct", a.correct},
            {"model_version", a.model_version}};
  if (a.route == AnswerRoute::fallback) j["fallback_reason"] = a.fallback_reason;
  if (!a.fallback_detail.empty()) j["fallback_detail"] = a.fallback_detail;
  if (a.probe) j["probe"] = true;
  if (a.audit) j["audit"] = true;
  return j;
}

json ThresholdEvent::to_json() const {
  return {{"t_s", t_s},
          {"reason", reason},
          {"t_edge_ms", latency.t_edge_ms},
          {"t_cloud_ms", latency.t_cloud_ms},
          {"rtt_ms", latency.rtt_ms},
          {"uplink_bps", latency.uplink_bps},
          {"payload_bytes", latency.payload_bytes},
          {"choice", choice.to_json()}};
}

json RuntimeStats::to_json() const {
  return {{"processed", processed},
          {"answered", answered},
          {"edge", edge},
          {"cloud", cloud},
          {"fallback", fallback},
          {"budget", budget},
          {"probes", probes},
          {"audits", audits},
          {"audits_answered", audits_answered},
          {"audit_disagreements", audit_disagreements},
          {"cloud_calls", cloud_calls},
          {"cloud_failures", cloud_failures},
          {"bytes_up", bytes_up},
          {"threshold_searches", threshold_searches},
          {"late_cloud_answers", late_cloud_answers},
          {"network", network.to_json()},
          {"t_cloud_ms", t_cloud_ms},
          {"t_edge_ms", t_edge_ms},
          {"threshold", threshold_json(threshold)}};
}

// A sample that may go to the cloud: the edge answer is already in `answer`.
struct Pending {
  Answer answer;
  std::vector<uint8_t> pixels;
  models::ImageShape shape;
  std::shared_ptr<const EdgeModel> model;
  Clock::time_point arrival;
  Clock::time_point deadline;
  bool probe = false;  // answered on the edge already; the call only measures (probe or audit)
  bool audit = false;  // ... and compares the FM's answer with the edge's
  std::atomic<bool> answered{false};
  std::atomic<bool> call_started{false};
  std::atomic<bool> censored{false};  // the deadline fed the estimator for it
};

struct EdgeRuntime::Impl {
  RuntimeOptions options;
  AnswerSink sink;
  const Clock::time_point start = Clock::now();
  double timeout_ms = 0.0;
  cloud::ClientOptions worker_client;

  // Model, routing state, estimates, statistics of calls.
  mutable std::mutex state_mutex;
  std::shared_ptr<const EdgeModel> model;
  NetworkEstimator estimator;
  double threshold = 0.0;
  // The offload ratio the calibration profile predicts at `threshold` (NaN: no prediction,
  // e.g. a fixed threshold given by hand, edge-only or cloud-only).
  double expected_offload = std::numeric_limits<double>::quiet_NaN();
  double t_edge_ms = 1.0;
  double t_cloud_ms = 5.0;
  double payload_bytes = 1100.0;
  route::LatencyModel searched;  // the inputs of the last search
  std::vector<ThresholdEvent> events;
  int in_flight = 0;
  Clock::time_point last_cloud_activity;
  int consecutive_failures = 0;
  Clock::time_point down_until;
  RuntimeStats call_stats;  // cloud_calls, cloud_failures, bytes_up, probes, audits, searches, late
  customize::TokenBucket audit_bucket;
  customize::TokenBucket query_bucket;
  std::mt19937_64 audit_rng;

  // Answers.
  std::mutex answer_mutex;
  std::condition_variable answered_cv;
  int64_t processed = 0;
  int64_t answered = 0;
  int64_t by_route[kAnswerRoutes] = {0, 0, 0, 0};

  // Cloud-bound work.
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<std::shared_ptr<Pending>> queue;
  bool stopping = false;

  std::mutex deadline_mutex;
  std::condition_variable deadline_cv;
  std::multimap<Clock::time_point, std::shared_ptr<Pending>> deadlines;
  bool deadline_stopping = false;

  std::vector<std::thread> workers;
  std::thread deadline_thread;

  Impl(EdgeModel m, RuntimeOptions o, AnswerSink s)
      : options(std::move(o)),
        sink(std::move(s)),
        estimator(options.estimator),
        // Unused buckets (no audits, no cap) still need a positive rate.
        audit_bucket(std::max(options.audit_per_minute, 1.0) / 60.0,
                     std::max(options.audit_per_minute / 6.0, 1.0)),
        query_bucket(std::max(options.cloud_queries_per_minute, 1.0) / 60.0,
                     std::max(options.cloud_queries_per_minute, 1.0)),
        audit_rng(options.seed) {
    if (!sink) throw Error("edge runtime: an answer sink is required");
    if (!(options.l_app_ms > 0.0)) {
      fail_expected("edge runtime L_app", "a budget > 0 ms", std::to_string(options.l_app_ms));
    }
    if (options.max_in_flight < 1) {
      fail_expected("edge runtime max_in_flight", ">= 1", std::to_string(options.max_in_flight));
    }
    if (!(options.research_step > 0.0)) {
      fail_expected("edge runtime research_step", "> 0", std::to_string(options.research_step));
    }
    if (!(options.nominal_cloud_ms >= 0.0)) {
      fail_expected("edge runtime nominal cloud time", ">= 0 ms",
                    std::to_string(options.nominal_cloud_ms));
    }
    if (!(options.audit_fraction >= 0.0 && options.audit_fraction <= 1.0)) {
      fail_expected("edge runtime audit fraction", "a share in [0, 1]",
                    std::to_string(options.audit_fraction));
    }
    if (options.audit_fraction > 0.0 && !(options.audit_per_minute > 0.0)) {
      fail_expected("edge runtime audit rate", "> 0 audits a minute",
                    std::to_string(options.audit_per_minute));
    }
    if (!(options.cloud_queries_per_minute >= 0.0)) {
      fail_expected("edge runtime cloud-query budget", ">= 0 queries a minute (0: no cap)",
                    std::to_string(options.cloud_queries_per_minute));
    }
    check_model(m);
    timeout_ms = effective_cloud_timeout_ms(options);
    if (!(timeout_ms > 0.0)) {
      fail_expected("edge runtime cloud timeout", "> 0 ms", std::to_string(timeout_ms));
    }
    t_edge_ms = m.t_edge_ms;
    t_cloud_ms = options.nominal_cloud_ms;
    payload_bytes = static_cast<double>(m.encoder->input_shape().numel()) + 300.0;
    model = std::make_shared<const EdgeModel>(std::move(m));
    last_cloud_activity = start;
    down_until = start;

    // The client of each worker: a slow answer is already a fallback at the deadline, so the
    // call itself may wait a few timeouts for the measurement; retries only on connection
    // failures, once.
    worker_client = options.client;
    worker_client.connect_timeout_s = std::min(options.client.connect_timeout_s,
                                               std::max(timeout_ms / 1000.0, 0.05));
    worker_client.read_timeout_s = std::max(1.0, 4.0 * timeout_ms / 1000.0);
    worker_client.write_timeout_s = worker_client.read_timeout_s;
    worker_client.max_retries = std::min(options.client.max_retries, 1);
    // Validates the URL now rather than in a worker.
    { cloud::OipClient probe_url(worker_client); }

    {
      std::lock_guard<std::mutex> lock(state_mutex);
      search_locked("start", start);
    }
    if (options.policy != Policy::edge_only) {
      for (int i = 0; i < options.max_in_flight; ++i) workers.emplace_back([this] { work(); });
    }
    deadline_thread = std::thread([this] { watch_deadlines(); });
  }

  void check_model(const EdgeModel& m) const {
    if (!m.encoder) fail_expected("edge model", "an image encoder", "none");
    if (!m.score) fail_expected("edge model", "a routing score", "none");
    if (m.pool.empty()) fail_expected("edge model", "a non-empty class pool", "an empty pool");
    if (m.encoder->embedding_dim() != m.pool.dim()) {
      fail_expected("edge model encoder and pool", "equal embedding dimensions",
                    std::to_string(m.encoder->embedding_dim()) + " vs " +
                        std::to_string(m.pool.dim()));
    }
    const bool needs_profile = options.policy == Policy::edgefm ||
                               (options.policy == Policy::fixed &&
                                std::isnan(options.fixed_threshold));
    if (needs_profile && m.calibration.empty()) {
      throw Error(std::string("edge runtime: policy '") + policy_name(options.policy) +
                  "' searches the threshold and needs the model's calibration profile; the "
                  "model has none");
    }
  }

  route::LatencyModel latency_model_locked() const {
    route::LatencyModel lm;
    const NetworkEstimate e = estimator.estimate();
    lm.t_edge_ms = t_edge_ms;
    lm.t_cloud_ms = t_cloud_ms;
    lm.rtt_ms = e.rtt_ms;
    lm.uplink_bps = e.uplink_bps;
    lm.payload_bytes = payload_bytes;
    return lm;
  }

  route::LatencyModel nominal_latency_model_locked() const {
    route::LatencyModel lm;
    lm.t_edge_ms = model->t_edge_ms;
    lm.t_cloud_ms = options.nominal_cloud_ms;
    lm.rtt_ms = options.estimator.nominal_rtt_ms;
    lm.uplink_bps = options.estimator.nominal_uplink_bps;
    lm.payload_bytes = static_cast<double>(model->encoder->input_shape().numel()) + 300.0;
    return lm;
  }

  // Sets the threshold in force for the policy. Caller holds state_mutex.
  void search_locked(const std::string& reason, Clock::time_point now) {
    ThresholdEvent event;
    event.t_s = seconds_since(start, now);
    event.reason = reason;
    event.latency = latency_model_locked();
    switch (options.policy) {
      case Policy::edge_only:
        threshold = -kInf;
        event.choice.threshold = -kInf;
        break;
      case Policy::cloud_only:
        threshold = kInf;
        event.choice.threshold = kInf;
        event.choice.edge_fraction = 0.0;
        event.choice.offload_ratio = 1.0;
        break;
      case Policy::fixed:
        if (!std::isnan(options.fixed_threshold)) {
          threshold = options.fixed_threshold;
          event.choice.threshold = threshold;
          break;
        }
        // Calibrated at the nominal network only, whatever has been measured since.
        event.latency = nominal_latency_model_locked();
        event.choice = route::search_threshold(model->calibration, event.latency, options.l_app_ms);
        threshold = event.choice.threshold;
        break;
      case Policy::edgefm:
        event.choice = route::search_threshold(model->calibration, event.latency, options.l_app_ms);
        threshold = event.choice.threshold;
        break;
    }
    const bool predicted = options.policy == Policy::edgefm ||
                           (options.policy == Policy::fixed && std::isnan(options.fixed_threshold));
    expected_offload = predicted ? event.choice.offload_ratio : std::numeric_limits<double>::quiet_NaN();
    searched = event.latency;
    ++call_stats.threshold_searches;
    events.push_back(std::move(event));
  }

  // edgefm: search again when the network or the cloud's time moved. Caller holds the lock.
  void maybe_research_locked(Clock::time_point now) {
    if (options.policy != Policy::edgefm) return;
    const route::LatencyModel lm = latency_model_locked();
    const double step = options.research_step;
    if (moved(lm.rtt_ms, searched.rtt_ms, step, 1.0) ||
        moved(lm.uplink_bps, searched.uplink_bps, step, 1.0) ||
        moved(lm.t_cloud_ms, searched.t_cloud_ms, step, 1.0)) {
      search_locked("network", now);
    }
  }

  void deliver(Answer& answer, Clock::time_point finish) {
    answer.finish_s = seconds_since(start, finish);
    answer.latency_ms = std::max(0.0, (answer.finish_s - answer.arrival_s) * 1000.0);
    answer.correct = !answer.truth.empty() && answer.truth == answer.prediction;
    std::lock_guard<std::mutex> lock(answer_mutex);
    sink(answer);
    ++answered;
    ++by_route[static_cast<int>(answer.route)];
    answered_cv.notify_all();
  }

  // The single place a cloud-bound sample gets its answer; false when it already has one.
  // `answer` is the caller's copy of p.answer (which nobody writes once the sample is
  // routed) with what the caller learnt filled in.
  bool answer_once(Pending& p, Answer answer, AnswerRoute route, const std::string& reason) {
    bool expected = false;
    if (!p.answered.compare_exchange_strong(expected, true)) return false;
    const Clock::time_point finish = Clock::now();
    answer.route = route;
    if (route == AnswerRoute::fallback) answer.fallback_reason = reason;
    deliver(answer, finish);
    return true;
  }

  void enqueue(std::shared_ptr<Pending> p) {
    {
      std::lock_guard<std::mutex> lock(queue_mutex);
      queue.push_back(p);
    }
    queue_cv.notify_one();
  }

  void process(Sample sample) {
    std::shared_ptr<const EdgeModel> m;
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      m = model;
    }
    const models::ImageShape shape = m->encoder->input_shape();
    if (static_cast<int64_t>(sample.pixels.size()) != shape.numel()) {
      fail_expected("sample " + std::to_string(sample.id),
                    std::to_string(shape.numel()) + " bytes (" + data::to_string(shape) + ")",
                    std::to_string(sample.pixels.size()));
    }
    // The small model always runs first.
    const Clock::time_point edge_start = Clock::now();
    const std::vector<float> image = data::to_unit_floats(sample.pixels.data(), sample.pixels.size());
    const int d = m->encoder->embedding_dim();
    const int k = static_cast<int>(m->pool.size());
    std::vector<float> embedding(static_cast<size_t>(d));
    m->encoder->embed(image.data(), 1, embedding.data());
    std::vector<float> sims(static_cast<size_t>(k));
    route::cosine_similarities(embedding.data(), 1, m->pool.data(), k, d, sims.data());
    const route::Top2 top = route::top2(sims.data(), k);
    const float score = (*m->score)(sims.data(), k, embedding.data(), d);
    const Clock::time_point edge_end = Clock::now();
    const double edge_ms = ms_between(edge_start, edge_end);
    {
      std::lock_guard<std::mutex> lock(answer_mutex);
      ++processed;
    }

    Answer answer;
    answer.id = sample.id;
    answer.prediction_index = top.first;
    answer.prediction = m->pool.name(static_cast<size_t>(top.first));
    answer.score = score;
    answer.arrival_s = seconds_since(start, sample.arrival);
    answer.edge_ms = edge_ms;
    answer.truth = std::move(sample.truth);
    answer.model_version = m->version;

    bool to_cloud = false;
    double expected = std::numeric_limits<double>::quiet_NaN();
    bool probe = false;
    bool audit = false;
    bool over_budget = false;
    bool breaker_open = false;
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      t_edge_ms = 0.9 * t_edge_ms + 0.1 * edge_ms;
      answer.threshold = threshold;
      expected = expected_offload;
      const NetworkEstimate e = estimator.estimate();
      answer.est_rtt_ms = e.rtt_ms;
      answer.est_uplink_bps = e.uplink_bps;
      if (options.policy != Policy::edge_only) {
        const double now_s = seconds_since(start, edge_end);
        to_cloud = route::route(score, threshold) == route::Route::cloud;
        if (to_cloud && edge_end < down_until) breaker_open = true;
        if (!to_cloud && options.audit_fraction > 0.0) {
          audit = std::uniform_real_distribution<double>(0.0, 1.0)(audit_rng) <
                      options.audit_fraction &&
                  audit_bucket.can_take(1.0, now_s);
        }
        if (!to_cloud && !audit && options.policy == Policy::edgefm &&
            options.probe_interval_ms > 0.0 && in_flight == 0 &&
            ms_between(last_cloud_activity, edge_end) >= options.probe_interval_ms) {
          probe = true;
        }
        // The cost cap covers every call.
        const bool calls = (to_cloud && !breaker_open) || audit || probe;
        if (calls && options.cloud_queries_per_minute > 0.0 &&
            !query_bucket.try_take(1.0, now_s)) {
          over_budget = to_cloud;
          audit = probe = false;
        }
        if (audit) {
          audit_bucket.try_take(1.0, now_s);
          ++call_stats.audits;
        }
        if (probe) {
          ++call_stats.probes;
          last_cloud_activity = edge_end;
        }
      }
    }
    if (options.observer) {
      EdgeObservation o;
      o.id = sample.id;
      o.pixels = &sample.pixels;
      o.embedding = embedding.data();
      o.dim = d;
      o.score = score;
      o.prediction_index = top.first;
      o.to_cloud = to_cloud;
      o.threshold = answer.threshold;
      o.expected_offload = expected;
      o.t_s = seconds_since(start, edge_end);
      options.observer(o);
    }

    if (over_budget) {
      answer.route = AnswerRoute::budget;
      deliver(answer, Clock::now());
      return;
    }
    if (!to_cloud) {
      answer.route = AnswerRoute::edge;
      std::shared_ptr<Pending> p;
      if (probe || audit) {
        p = std::make_shared<Pending>();
        p->answer = answer;
        p->pixels = std::move(sample.pixels);
        p->shape = shape;
        p->model = m;
        p->arrival = sample.arrival;
        p->probe = true;
        p->audit = audit;
        p->answered = true;
        answer.probe = probe;
        answer.audit = audit;
        answer.bytes_sent = static_cast<int64_t>(payload_bytes_now());
      }
      deliver(answer, Clock::now());
      if (p) enqueue(std::move(p));
      return;
    }

    auto p = std::make_shared<Pending>();
    p->answer = std::move(answer);
    p->shape = shape;
    p->model = m;
    p->arrival = sample.arrival;
    p->deadline = sample.arrival + from_ms(timeout_ms);
    if (breaker_open) {
      answer_once(*p, p->answer, AnswerRoute::fallback, "down");
      return;
    }
    bool busy = false;
    {
      std::lock_guard<std::mutex> lock(queue_mutex);
      busy = queue.size() >= options.max_queued;
    }
    if (busy) {
      answer_once(*p, p->answer, AnswerRoute::fallback, "busy");
      return;
    }
    p->pixels = std::move(sample.pixels);
    {
      std::lock_guard<std::mutex> lock(deadline_mutex);
      deadlines.emplace(p->deadline, p);
    }
    deadline_cv.notify_one();
    enqueue(std::move(p));
  }

  double payload_bytes_now() {
    std::lock_guard<std::mutex> lock(state_mutex);
    return payload_bytes;
  }

  void work() {
    std::unique_ptr<cloud::OipClient> client = std::make_unique<cloud::OipClient>(worker_client);
    for (;;) {
      std::shared_ptr<Pending> p;
      {
        std::unique_lock<std::mutex> lock(queue_mutex);
        queue_cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping and nothing left
        p = std::move(queue.front());
        queue.pop_front();
      }
      if (!p->probe && p->answered.load()) continue;  // its deadline passed in the queue
      call(*client, *p);
    }
  }

  void call(cloud::OipClient& client, Pending& p) {
    const Clock::time_point call_start = Clock::now();
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      ++in_flight;
      ++call_stats.cloud_calls;
      last_cloud_activity = call_start;
    }
    p.call_started = true;
    cloud::ImageInference result;
    bool ok = false;
    bool timed_out = false;
    std::string failure, detail;
    try {
      result = client.infer_images_u8(p.pixels.data(), 1, p.shape);
      ok = result.count == 1 && !result.class_name.empty();
      if (!ok) failure = "error";
    } catch (const cloud::RequestError& e) {
      if (e.no_answer()) {
        timed_out = ms_between(call_start, Clock::now()) >=
                    0.9 * worker_client.read_timeout_s * 1000.0;
        failure = timed_out ? "timeout" : "unreachable";
      } else {
        failure = e.refused() ? "refused" : "rejected";
        detail = "HTTP " + std::to_string(e.status()) +
                 (e.server_message().empty() ? "" : ": " + e.server_message());
      }
    } catch (const Error&) {
      failure = "error";
    }
    const Clock::time_point call_end = Clock::now();
    const double call_ms = ms_between(call_start, call_end);

    int64_t bytes = 0;
    double server_ms = -1.0;
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      --in_flight;
      last_cloud_activity = call_end;
      if (ok) {
        bytes = result.call.bytes_sent;
        payload_bytes = static_cast<double>(bytes);
        consecutive_failures = 0;
        server_ms = result.server.server_us >= 0 ? result.server.server_us / 1000.0 : -1.0;
        if (server_ms >= 0.0) t_cloud_ms = 0.8 * t_cloud_ms + 0.2 * server_ms;
        if (!p.censored.load()) estimator.add({bytes, call_ms, server_ms});
      } else {
        ++call_stats.cloud_failures;
        if (++consecutive_failures >= options.breaker_failures) {
          down_until = call_end + from_ms(options.breaker_cooldown_ms);
        }
        if (timed_out) {
          bytes = static_cast<int64_t>(payload_bytes);
          if (!p.censored.load()) {
            estimator.add({bytes, call_ms, -1.0, true});
          }
        }
      }
      call_stats.bytes_up += bytes;
      maybe_research_locked(call_end);
    }
    if (p.probe) {
      if (p.audit && ok) audited(p, result.class_name[0], call_end);
      return;
    }

    Answer answer = p.answer;
    answer.bytes_sent = bytes;
    answer.cloud_ms = call_ms;
    answer.server_ms = server_ms;
    if (ok) {
      answer.prediction = result.class_name[0];
      auto index = p.model->pool.index_of(answer.prediction);
      answer.prediction_index = index ? static_cast<int>(*index) : -1;
      if (!answer_once(p, std::move(answer), AnswerRoute::cloud, "")) {
        std::lock_guard<std::mutex> lock(state_mutex);
        ++call_stats.late_cloud_answers;
      }
    } else {
      answer.fallback_detail = std::move(detail);
      answer_once(p, std::move(answer), AnswerRoute::fallback, failure);
    }
  }

  void audited(const Pending& p, const std::string& cloud_class, Clock::time_point when) {
    AuditResult r;
    r.id = p.answer.id;
    r.edge_prediction = p.answer.prediction;
    r.cloud_prediction = cloud_class;
    r.agree = r.edge_prediction == r.cloud_prediction;
    r.score = p.answer.score;
    r.t_s = seconds_since(start, when);
    r.model_version = p.answer.model_version;
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      ++call_stats.audits_answered;
      call_stats.audit_disagreements += !r.agree;
    }
    if (options.on_audit) options.on_audit(r);
  }

  void watch_deadlines() {
    std::unique_lock<std::mutex> lock(deadline_mutex);
    for (;;) {
      if (deadline_stopping && deadlines.empty()) return;
      if (deadlines.empty()) {
        deadline_cv.wait(lock);
        continue;
      }
      auto first = deadlines.begin();
      if (Clock::now() < first->first) {
        deadline_cv.wait_until(lock, first->first);
        continue;
      }
      std::shared_ptr<Pending> p = std::move(first->second);
      deadlines.erase(first);
      lock.unlock();
      if (!p->answered.load()) {
        Answer answer = p->answer;
        if (p->call_started.load()) {
          // The call took at least the timeout: a lower bound the estimator can use now
          // rather than when (or whether) the call finishes.
          std::lock_guard<std::mutex> state_lock(state_mutex);
          p->censored = true;
          answer.bytes_sent = static_cast<int64_t>(payload_bytes);
          estimator.add({answer.bytes_sent, ms_between(p->arrival, Clock::now()), -1.0, true});
          maybe_research_locked(Clock::now());
        }
        answer_once(*p, std::move(answer), AnswerRoute::fallback, "timeout");
      }
      lock.lock();
    }
  }

  void drain() {
    std::unique_lock<std::mutex> lock(answer_mutex);
    answered_cv.wait(lock, [&] { return answered >= processed; });
  }

  void stop() {
    drain();
    {
      std::lock_guard<std::mutex> lock(queue_mutex);
      stopping = true;
      // Only probes can be left: every other queued sample has been answered.
      queue.clear();
    }
    queue_cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    {
      std::lock_guard<std::mutex> lock(deadline_mutex);
      deadline_stopping = true;
      deadlines.clear();
    }
    deadline_cv.notify_all();
    if (deadline_thread.joinable()) deadline_thread.join();
  }
};

EdgeRuntime::EdgeRuntime(EdgeModel model, RuntimeOptions options, AnswerSink sink)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(options), std::move(sink))) {}

EdgeRuntime::~EdgeRuntime() { impl_->stop(); }

void EdgeRuntime::process(Sample sample) { impl_->process(std::move(sample)); }

void EdgeRuntime::drain() { impl_->drain(); }

void EdgeRuntime::swap_model(EdgeModel model) {
  impl_->check_model(model);
  std::lock_guard<std::mutex> lock(impl_->state_mutex);
  impl_->model = std::make_shared<const EdgeModel>(std::move(model));
  impl_->search_locked("model", Clock::now());
}

void EdgeRuntime::set_pool(models::TextPool pool) {
  std::lock_guard<std::mutex> lock(impl_->state_mutex);
  EdgeModel next = *impl_->model;
  next.pool = std::move(pool);
  impl_->check_model(next);
  impl_->model = std::make_shared<const EdgeModel>(std::move(next));
}

std::shared_ptr<const EdgeModel> EdgeRuntime::model() const {
  std::lock_guard<std::mutex> lock(impl_->state_mutex);
  return impl_->model;
}

RuntimeStats EdgeRuntime::stats() const {
  RuntimeStats s;
  {
    std::lock_guard<std::mutex> lock(impl_->state_mutex);
    s = impl_->call_stats;
    s.network = impl_->estimator.estimate();
    s.t_cloud_ms = impl_->t_cloud_ms;
    s.t_edge_ms = impl_->t_edge_ms;
    s.threshold = impl_->threshold;
  }
  std::lock_guard<std::mutex> lock(impl_->answer_mutex);
  s.processed = impl_->processed;
  s.answered = impl_->answered;
  s.edge = impl_->by_route[0];
  s.cloud = impl_->by_route[1];
  s.fallback = impl_->by_route[2];
  s.budget = impl_->by_route[3];
  return s;
}

std::vector<ThresholdEvent> EdgeRuntime::threshold_events() const {
  std::lock_guard<std::mutex> lock(impl_->state_mutex);
  return impl_->events;
}

double EdgeRuntime::cloud_timeout_ms() const { return impl_->timeout_ms; }

Clock::time_point EdgeRuntime::start_time() const { return impl_->start; }

}  // namespace edgefm::edge
