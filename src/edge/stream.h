#pragma once
// Replaying a sample stream through the edge runtime at a fixed arrival rate, and the summary
// of what came back (the `edgefm edge --json` fields, docs/edge.md).
#include <atomic>
#include <cstddef>
#include <functional>
#include <istream>
#include <map>
#include <string>
#include <vector>

#include "common/json_io.h"
#include "data/dataset.h"
#include "edge/runtime.h"
#include "eval/metrics.h"

namespace edgefm::edge {

// Sample i of `order` arrives at start + i / rate_per_s (rate 0: each as soon as the one
// before was routed). Its latency counts from that scheduled arrival, so a backlog on the
// edge shows. Returns the number of samples fed (fewer than order.size() when `stop` became
// true). `progress` (may be empty) is called with the count fed after each sample.
size_t replay(EdgeRuntime& runtime, const data::Dataset& dataset, const std::vector<size_t>& order,
              double rate_per_s, const std::atomic<bool>* stop = nullptr,
              const std::function<void(size_t)>& progress = {});

// A live stream of raw sample files: one path a line on `in` (e.g. standard input, written
// by a camera or microphone process). Each file is preprocessed by `spec` (the model's) and
// processed when its line arrives (its arrival time). Files that cannot be read are
// reported to `on_bad` ("path: why") and skipped; they take no id. `on_fed(id, path)` names
// each accepted sample. Returns the number fed; stops at end of input or when `stop` is set.
size_t feed_paths(EdgeRuntime& runtime, std::istream& in, const data::SampleSpec& spec,
                  const std::atomic<bool>* stop,
                  const std::function<void(uint64_t, const std::string&)>& on_fed,
                  const std::function<void(const std::string&)>& on_bad);

struct StreamSummary {
  size_t samples = 0;
  size_t with_truth = 0;
  double accuracy = 0.0;              // over samples with a known truth
  eval::LatencySummary latency;       // end-to-end, ms
  double l_app_ms = 0.0;
  double slo_violation_rate = 0.0;    // fraction with latency > l_app_ms
  double offload_ratio = 0.0;         // fraction routed to the cloud (answered cloud or fallback)
  int64_t bytes_up = 0;               // request bytes of every cloud call, probes included
  size_t edge = 0, cloud = 0, fallback = 0, budget = 0, probes = 0, audits = 0;
  std::map<std::string, size_t> fallback_reasons;
  double accuracy_by_route[kAnswerRoutes] = {0, 0, 0, 0};  // edge, cloud, fallback, budget (0: none)
  // {"samples", "with_truth", "accuracy", "latency_ms_mean", "latency_ms_p50",
  //  "latency_ms_p95", "latency_ms_p99", "latency_ms_max", "l_app_ms", "slo_violation_rate",
  //  "offload_ratio", "bytes_up", "counts": {"edge", "cloud", "fallback", "budget", "probe",
  //  "audit"}, "fallback_reasons": {...}, "accuracy_by_route": {"edge", "cloud", "fallback",
  //  "budget"}}
  json to_json() const;
};

// Summary of the answers; bytes_up is taken from the runtime's statistics by the caller
// (an answer cannot see the bytes of probes sent after it). Throws Error on no answers.
StreamSummary summarize_answers(const std::vector<Answer>& answers, double l_app_ms,
                                int64_t bytes_up);

}  // namespace edgefm::edge
