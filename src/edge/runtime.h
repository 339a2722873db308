#pragma once
// The edge runtime: runs the small model on every sample, scores its confidence, routes it
// with the threshold in force (DESIGN.md: r(x) = 1[score >= thre]) and answers it, from the
// edge or through the cloud service. Every answer says where it came from:
//   edge      the small model's answer (confident, or the policy keeps it local);
//   cloud     the FM's answer, through the OIP client;
//   fallback  the sample was bound for the cloud, but the cloud did not answer in time (or
//             at all): the small model's answer, given at the deadline or at the failure.
//   budget    the sample was bound for the cloud, but the cloud-query budget of this minute
//             is spent (a cost cap): the small model's answer, at once.
//
// Audits. A score can be confidently wrong on a class the edge never saw, so a
// configurable share of the samples answered on the edge also goes to the cloud, within a
// rate limit. The edge answer stands; when the FM's answer comes back, `on_audit` gets both
// (the drift detector in edge/drift.h counts the disagreements).
//
// Threads. process() runs on the caller's thread: the edge model runs inline and an edge
// answer is given before process() returns. Cloud-bound samples go to a queue served by
// `max_in_flight` worker threads, each with its own keep-alive OipClient, so a slow cloud
// call never blocks edge answers or other cloud calls. A deadline thread answers every
// cloud-bound sample whose deadline (arrival + cloud timeout) passes first. Each sample is
// answered exactly once (an atomic flag decides between the worker and the deadline); the
// sink is called from these threads one call at a time.
//
// Threshold. edge-only: -inf, cloud-only: +inf, fixed: given, or searched once at the
// nominal network and never updated; edgefm: searched at the nominal network, then again
// whenever the network estimate (RTT, uplink bandwidth; edge/estimator.h) or the cloud's
// service time moves by more than `research_step` (relative) from the values of the last
// search. While the edgefm policy keeps everything on the edge it still sends one sample
// every `probe_interval_ms` to the cloud as a probe (answered on the edge, the cloud call
// only measures), so the estimate recovers when the network does.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cloud/client.h"
#include "common/json_io.h"
#include "edge/estimator.h"
#include "models/encoder.h"
#include "models/student.h"
#include "models/text_pool.h"
#include "route/scores.h"
#include "route/threshold.h"

namespace edgefm::edge {

using Clock = std::chrono::steady_clock;

enum class Policy { edge_only, cloud_only, fixed, edgefm };
std::vector<std::string> policy_names();  // edge-only, cloud-only, fixed, edgefm
const char* policy_name(Policy policy);
Policy parse_policy(const std::string& name);  // Error lists the names

enum class AnswerRoute { edge, cloud, fallback, budget };
inline constexpr int kAnswerRoutes = 4;
const char* answer_route_name(AnswerRoute route);  // "edge" / "cloud" / "fallback" / "budget"

// What the runtime needs of a customized student: the model, its pool, its routing score,
// the calibration profile measured with the FM as the cloud, and its measured latency.
struct EdgeModel {
  std::shared_ptr<const models::ImageEncoder> encoder;
  models::TextPool pool;
  std::shared_ptr<const route::ConfidenceScore> score;
  route::CalibrationProfile calibration;
  double t_edge_ms = 1.0;  // batch-1 latency measured at customization
  std::string version;
};

// From a loaded student artifact: meta "score" (route::score_to_json; default: margin),
// "calibration" (required unless `require_calibration` is false), "t_edge_ms", "version".
// Throws Error naming what is missing or malformed.
EdgeModel edge_model_from_student(models::Student student, bool require_calibration = true);
// models::load_student + edge_model_from_student, refusing a model that must not serve
// (models::unsound_reason: non-finite weights or outputs) as the updater refuses an artifact.
EdgeModel load_edge_model(const std::string& student_path, bool require_calibration = true);

// What the small model made of one sample, for the uploader (edge/loop.h). Valid only during
// the call.
struct EdgeObservation {
  uint64_t id = 0;
  const std::vector<uint8_t>* pixels = nullptr;  // C x H x W 8-bit
  const float* embedding = nullptr;              // dim floats, L2-normalised
  int dim = 0;
  float score = 0.0f;          // the routing score
  int prediction_index = -1;   // in the edge's pool
  bool to_cloud = false;       // routed to the cloud
  double threshold = 0.0;      // the routing threshold in force (score < threshold: cloud)
  // The share of samples the calibration profile predicts the threshold sends to the cloud
  // (NaN when the policy has no such prediction).
  double expected_offload = std::numeric_limits<double>::quiet_NaN();
  double t_s = 0.0;            // seconds since the runtime started
};

// An audited sample: the edge's answer against the FM's.
struct AuditResult {
  uint64_t id = 0;
  std::string edge_prediction;
  std::string cloud_prediction;
  bool agree = false;
  float score = 0.0f;
  double t_s = 0.0;  // when the FM's answer came
  std::string model_version;
};

struct RuntimeOptions {
  Policy policy = Policy::edgefm;
  double l_app_ms = route::kDefaultLAppMs;  // the application's latency budget
  // fixed: the threshold in force; NaN: searched once at the nominal network.
  double fixed_threshold = std::numeric_limits<double>::quiet_NaN();
  cloud::ClientOptions client = cloud::client_default_options();  // url, token, model names
  int max_in_flight = 32;     // cloud calls at once (worker threads, one connection each)
  size_t max_queued = 1024;   // cloud-bound samples waiting for a worker; beyond: fallback
  // A cloud-bound sample is answered as fallback when the cloud has not answered within
  // this time of its arrival. 0: derived, timeout_factor x l_app_ms (at least
  // min_cloud_timeout_ms).
  double cloud_timeout_ms = 0.0;
  double timeout_factor = 10.0;
  double min_cloud_timeout_ms = 100.0;
  EstimatorOptions estimator = estimator_default_options();  // nominal RTT and uplink
  double nominal_cloud_ms = 5.0;  // cloud service time before any answer
  double research_step = 0.10;    // edgefm: re-search when an input moved this much
  double probe_interval_ms = 1000.0;  // edgefm: probe the cloud when idle this long; 0: never
  int breaker_failures = 3;       // consecutive failures that mark the cloud down ...
  double breaker_cooldown_ms = 500.0;  // ... for this long (then one sample tries again)
  // Audit sampling: each sample answered on the edge also goes to the cloud with this
  // probability (so audits are at most this share of all samples), at most `audit_per_minute`
  // a minute. 0: no audits. Not with edge-only (which never calls the cloud).
  double audit_fraction = 0.0;
  double audit_per_minute = 120.0;
  // Cost cap on cloud calls of every kind (routed samples, audits, probes): at most this many
  // a minute (a token bucket holding one minute's worth). 0: no cap.
  double cloud_queries_per_minute = 0.0;
  uint64_t seed = 1;  // audit draws
  // Called on process()'s thread for every sample, after the small model ran (keep it cheap).
  std::function<void(const EdgeObservation&)> observer;
  // Called from a worker thread when an audited sample's FM answer arrives.
  std::function<void(const AuditResult&)> on_audit;
};
RuntimeOptions runtime_default_options();
// The timeout in force for these options (cloud_timeout_ms or the derived one).
double effective_cloud_timeout_ms(const RuntimeOptions& options);

// One sample of the stream.
struct Sample {
  uint64_t id = 0;
  std::vector<uint8_t> pixels;  // C x H x W 8-bit, the student's input shape
  std::string truth;            // true class name; empty when unknown
  Clock::time_point arrival;    // when it arrived (its latency starts here)
};

struct Answer {
  uint64_t id = 0;
  std::string prediction;  // class name
  int prediction_index = -1;  // index in the edge's pool (-1: the cloud named another class)
  AnswerRoute route = AnswerRoute::edge;
  // Why a cloud-bound sample was answered by the edge (fallback only): timeout, unreachable,
  // refused (the token), rejected (the cloud answered an HTTP error), error (an answer that
  // could not be read), busy, down.
  std::string fallback_reason;
  std::string fallback_detail;  // refused/rejected: "HTTP 413: <the server's message>"
  bool probe = false;           // an edge answer whose sample also went to the cloud
  bool audit = false;           // ... as an audit (probe is then false)
  float score = 0.0f;           // the routing score (the margin by default)
  double threshold = 0.0;       // the threshold in force when it was routed
  double arrival_s = 0.0;       // seconds since the runtime started
  double finish_s = 0.0;
  double latency_ms = 0.0;      // finish - arrival
  double edge_ms = 0.0;         // the small model + score
  double cloud_ms = -1.0;       // the cloud call (-1: none finished before the answer)
  double server_ms = -1.0;      // the cloud's own time for it, as the cloud reported (-1: none)
  int64_t bytes_sent = 0;       // request body bytes sent for this sample
  double est_rtt_ms = 0.0;      // network estimate when it was routed
  double est_uplink_bps = 0.0;
  std::string truth;
  bool correct = false;         // truth known and equal to prediction
  std::string model_version;
};
json answer_to_json(const Answer& answer);

// One (re-)search of the threshold.
struct ThresholdEvent {
  double t_s = 0.0;  // seconds since the runtime started
  std::string reason;  // start, network, model
  route::LatencyModel latency;
  route::ThresholdChoice choice;
  json to_json() const;
};

struct RuntimeStats {
  int64_t processed = 0;
  int64_t answered = 0;
  int64_t edge = 0, cloud = 0, fallback = 0, budget = 0;
  int64_t probes = 0;
  int64_t audits = 0;                // audit calls started
  int64_t audits_answered = 0;       // audits the FM answered
  int64_t audit_disagreements = 0;   // ... with another class than the edge
  int64_t cloud_calls = 0;    // calls started (probes included)
  int64_t cloud_failures = 0; // calls that failed or timed out
  int64_t bytes_up = 0;       // request bytes of every call
  int64_t threshold_searches = 0;
  int64_t late_cloud_answers = 0;  // cloud answers that came after the fallback
  NetworkEstimate network;
  double t_cloud_ms = 0.0;
  double t_edge_ms = 0.0;
  double threshold = 0.0;
  json to_json() const;
};

class EdgeRuntime {
 public:
  using AnswerSink = std::function<void(const Answer&)>;

  // Searches the first threshold (Error when the policy needs a calibration profile the
  // model lacks, or on bad options) and starts the workers. No connection is made yet.
  EdgeRuntime(EdgeModel model, RuntimeOptions options, AnswerSink sink);
  ~EdgeRuntime();  // drain(), then stops the threads
  EdgeRuntime(const EdgeRuntime&) = delete;
  EdgeRuntime& operator=(const EdgeRuntime&) = delete;

  // Runs the small model on the sample and routes it. Edge answers are given before it
  // returns; cloud-bound ones later, from another thread, by their deadline at the latest.
  // Throws Error when the pixels do not fit the model's input.
  void process(Sample sample);
  // Returns once every sample processed so far has been answered.
  void drain();

  // Replaces the model without dropping samples: samples already routed finish with the old
  // one, the next ones use the new one; the threshold is searched again with its profile.
  void swap_model(EdgeModel model);
  // Replaces the class pool of the running model (runtime classes): the next sample is
  // classified against it. Throws Error on a dimension mismatch or an empty pool.
  void set_pool(models::TextPool pool);
  // The model in force.
  std::shared_ptr<const EdgeModel> model() const;

  RuntimeStats stats() const;
  std::vector<ThresholdEvent> threshold_events() const;
  double cloud_timeout_ms() const;
  Clock::time_point start_time() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm::edge
