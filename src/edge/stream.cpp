#include "edge/stream.h"

#include <chrono>
#include <thread>

#include "common/error.h"

namespace edgefm::edge {

size_t replay(EdgeRuntime& runtime, const data::Dataset& dataset, const std::vector<size_t>& order,
              double rate_per_s, const std::atomic<bool>* stop,
              const std::function<void(size_t)>& progress) {
  if (!(rate_per_s >= 0.0)) fail_expected("stream rate", "samples/s >= 0", std::to_string(rate_per_s));
  const Clock::time_point start = Clock::now();
  const size_t sample_size = dataset.sample_size();
  size_t fed = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (stop != nullptr && stop->load()) break;
    const size_t index = order[i];
    if (index >= dataset.size()) {
      fail_expected("stream order", "sample indices below " + std::to_string(dataset.size()),
                    std::to_string(index));
    }
    Clock::time_point arrival = Clock::now();
    if (rate_per_s > 0.0) {
      arrival = start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(static_cast<double>(i) / rate_per_s));
      std::this_thread::sleep_until(arrival);
    }
    Sample sample;
    sample.id = i;
    const uint8_t* bytes = dataset.sample(index);
    sample.pixels.assign(bytes, bytes + sample_size);
    const int label = dataset.labels[index];
    if (label >= 0 && static_cast<size_t>(label) < dataset.class_names.size()) {
      sample.truth = dataset.class_names[static_cast<size_t>(label)];
    }
    sample.arrival = arrival;
    runtime.process(std::move(sample));
    ++fed;
    if (progress) progress(fed);
  }
  return fed;
}

size_t feed_paths(EdgeRuntime& runtime, std::istream& in, const data::SampleSpec& spec,
                  const std::atomic<bool>* stop,
                  const std::function<void(uint64_t, const std::string&)>& on_fed,
                  const std::function<void(const std::string&)>& on_bad) {
  size_t fed = 0;
  std::string line;
  while ((stop == nullptr || !stop->load()) && std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) continue;
    Sample sample;
    sample.arrival = Clock::now();
    try {
      sample.pixels = data::load_sample_file(line, spec);
    } catch (const std::exception& e) {
      if (on_bad) on_bad(e.what());
      continue;
    }
    sample.id = fed;
    if (on_fed) on_fed(sample.id, line);
    runtime.process(std::move(sample));
    ++fed;
  }
  return fed;
}

json StreamSummary::to_json() const {
  json reasons = json::object();
  for (const auto& [reason, count] : fallback_reasons) reasons[reason] = count;
  return {{"samples", samples},
          {"with_truth", with_truth},
          {"accuracy", accuracy},
          {"latency_ms_mean", latency.mean_ms},
          {"latency_ms_p50", latency.p50_ms},
          {"latency_ms_p95", latency.p95_ms},
          {"latency_ms_p99", latency.p99_ms},
          {"latency_ms_max", latency.max_ms},
          {"l_app_ms", l_app_ms},
          {"slo_violation_rate", slo_violation_rate},
          {"offload_ratio", offload_ratio},
          {"bytes_up", bytes_up},
          {"counts",
           {{"edge", edge},
            {"cloud", cloud},
            {"fallback", fallback},
            {"budget", budget},
            {"probe", probes},
            {"audit", audits}}},
          {"fallback_reasons", reasons},
          {"accuracy_by_route",
           {{"edge", accuracy_by_route[0]},
            {"cloud", accuracy_by_route[1]},
            {"fallback", accuracy_by_route[2]},
            {"budget", accuracy_by_route[3]}}}};
}

StreamSummary summarize_answers(const std::vector<Answer>& answers, double l_app_ms,
                                int64_t bytes_up) {
  if (answers.empty()) throw Error("stream summary: no answers to summarize");
  StreamSummary s;
  s.samples = answers.size();
  s.l_app_ms = l_app_ms;
  s.bytes_up = bytes_up;
  std::vector<double> latencies;
  latencies.reserve(answers.size());
  size_t correct = 0, violations = 0;
  size_t route_truth[kAnswerRoutes] = {0, 0, 0, 0}, route_correct[kAnswerRoutes] = {0, 0, 0, 0};
  for (const Answer& a : answers) {
    latencies.push_back(a.latency_ms);
    violations += a.latency_ms > l_app_ms;
    const int r = static_cast<int>(a.route);
    switch (a.route) {
      case AnswerRoute::edge: ++s.edge; break;
      case AnswerRoute::cloud: ++s.cloud; break;
      case AnswerRoute::fallback:
        ++s.fallback;
        ++s.fallback_reasons[a.fallback_reason];
        break;
      case AnswerRoute::budget: ++s.budget; break;
    }
    s.probes += a.probe;
    s.audits += a.audit;
    if (!a.truth.empty()) {
      ++s.with_truth;
      correct += a.correct;
      ++route_truth[r];
      route_correct[r] += a.correct;
    }
  }
  const double n = static_cast<double>(s.samples);
  s.accuracy = s.with_truth ? static_cast<double>(correct) / static_cast<double>(s.with_truth) : 0.0;
  s.latency = eval::summarize_latency(std::move(latencies));
  s.slo_violation_rate = static_cast<double>(violations) / n;
  s.offload_ratio = static_cast<double>(s.cloud + s.fallback) / n;
  for (int r = 0; r < kAnswerRoutes; ++r) {
    s.accuracy_by_route[r] =
        route_truth[r] ? static_cast<double>(route_correct[r]) / static_cast<double>(route_truth[r])
                       : 0.0;
  }
  return s;
}

}  // namespace edgefm::edge
