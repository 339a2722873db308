#include "edge/loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <string_view>

#include "cloud/customization_client.h"
#include "common/error.h"
#include "edge/upload_queue.h"

namespace edgefm::edge {

LoopOptions loop_default_options() { return LoopOptions{}; }

json LoopStats::to_json() const {
  return {{"observed", observed},
          {"selected", selected},
          {"queued", queued},
          {"acknowledged", acknowledged},
          {"upload_failures", upload_failures},
          {"drifts", drifts},
          {"jobs_submitted", jobs_submitted},
          {"jobs_done", jobs_done},
          {"jobs_failed", jobs_failed},
          {"pending", pending},
          {"drift", drift},
          {"offload_drift", offload_drift}};
}

struct CustomizationLoop::Impl {
  LoopOptions options;
  models::ImageShape shape;
  EventSink on_event;
  const Clock::time_point start = Clock::now();
  const float base_threshold;

  mutable std::mutex mutex;  // everything below
  std::condition_variable wake;
  customize::UploadSelector selector;
  DriftDetector detector;          // audits: edge vs FM disagreements
  DriftDetector offload_detector;  // routing decisions vs the calibrated offload
  std::map<uint64_t, std::vector<uint8_t>> candidates;  // pixels of the open window's candidates
  struct Pick {
    std::vector<uint8_t> pixels;
    json metadata;
  };
  std::deque<Pick> picks;  // selected, not yet in the queue
  std::map<uint64_t, float> scores;  // score of each open-window candidate (for metadata)
  double drift_until_s = -1.0;       // every sample is a candidate until then
  bool job_wanted = false;
  std::string job_reason;
  size_t acked_since_trigger = 0;
  size_t acked_since_model = 0;
  std::string job_id;  // the job being followed
  bool flush_requested = false;
  bool stopping = false;
  LoopStats counters;

  std::unique_ptr<UploadQueue> queue;
  std::unique_ptr<cloud::CustomizationClient> client;
  std::thread worker;

  Impl(LoopOptions o, const models::ImageShape& s, int dim, EventSink sink)
      : options(std::move(o)),
        shape(s),
        on_event(std::move(sink)),
        base_threshold(options.selector.upload_threshold),
        selector(options.selector, dim),
        detector(options.drift),
        offload_detector(options.offload_detector) {
    if (options.queue_path.empty()) throw Error("customization loop: an upload queue file is required");
    if (options.device.empty()) throw Error("customization loop: a device name is required");
    if (options.upload_batch == 0) fail_expected("customization loop upload batch", ">= 1", "0");
    if (!(options.upload_interval_s > 0.0)) {
      fail_expected("customization loop upload interval", "> 0 s",
                    std::to_string(options.upload_interval_s));
    }
    if (!(options.offload_rise > 0.0 && options.offload_rise < 0.9)) {
      fail_expected("customization loop offload rise", "in (0, 0.9)",
                    std::to_string(options.offload_rise));
    }
    if (!(options.drift_upload_s >= 0.0)) {
      fail_expected("customization loop drift upload time", ">= 0 s",
                    std::to_string(options.drift_upload_s));
    }
    if (options.jobs && options.job_min_new == 0) {
      fail_expected("customization loop job_min_new", ">= 1 sample", "0");
    }
    if (options.jobs && !options.job_request.is_object()) {
      fail_expected("customization loop job request", "a JSON object", options.job_request.dump());
    }
    queue = std::make_unique<UploadQueue>(options.queue_path);
    client = std::make_unique<cloud::CustomizationClient>(options.client);
    counters.pending = queue->size();
    worker = std::thread([this] { run(); });
  }

  double now_s() const {
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  void emit(json event) {  // never with `mutex` held
    if (!on_event) return;
    event["t_s"] = now_s();
    {
      std::lock_guard<std::mutex> lock(mutex);
      event["observed"] = counters.observed;
    }
    on_event(event);
  }

  // --- the runtime's thread -------------------------------------------------------------
  void observe(const EdgeObservation& o) {
    json drift_state;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (offload_drift_locked(o)) drift_state = offload_detector.to_json();
      offer_locked(o);
    }
    if (!drift_state.is_null()) emit_drift("offload", drift_state);
  }

  // The routing decision against the offload the calibration profile predicts; true on drift.
  bool offload_drift_locked(const EdgeObservation& o) {
    if (!options.offload_drift || !std::isfinite(o.expected_offload)) return false;
    const double p0 = std::clamp(o.expected_offload, 0.02, 0.9);
    const double p1 = std::min(0.98, p0 + options.offload_rise);
    if (!offload_detector.add(o.to_cloud, p0, p1)) return false;
    declare_drift_locked();
    return true;
  }

  // Drift: look at everything for a while, and want a new model.
  void declare_drift_locked() {
    ++counters.drifts;
    drift_until_s = now_s() + options.drift_upload_s;
    selector.set_upload_threshold(std::numeric_limits<float>::infinity());
    want_job_locked("drift");
  }

  void emit_drift(const std::string& source, const json& state) {
    emit({{"event", "drift"},
          {"source", source},
          {"detector", state},
          {"upload_all_s", options.drift_upload_s}});
  }

  void offer_locked(const EdgeObservation& o) {
    ++counters.observed;
    const double t = now_s();
    if (drift_until_s >= 0.0 && t >= drift_until_s) {
      drift_until_s = -1.0;
      selector.set_upload_threshold(base_threshold);
    }
    if (options.upload_routed && drift_until_s < 0.0) {
      selector.set_upload_threshold(static_cast<float>(o.threshold));
    }
    const bool candidate = o.score < selector.upload_threshold();
    if (candidate) {
      candidates[o.id] = *o.pixels;
      scores[o.id] = o.score;
    }
    const size_t bytes = o.pixels->size() + 64;
    std::vector<uint64_t> chosen = selector.offer(o.id, o.score, o.embedding, bytes, t);
    if (chosen.empty()) return;
    for (uint64_t id : chosen) {
      auto it = candidates.find(id);
      if (it == candidates.end()) continue;
      Pick pick;
      pick.pixels = std::move(it->second);
      pick.metadata = {{"id", id}, {"score", scores[id]}, {"t_s", t}};
      picks.push_back(std::move(pick));
      ++counters.selected;
    }
    // The closed window's other candidates are not needed any more.
    for (auto it = candidates.begin(); it != candidates.end();) {
      if (it->second.empty() || !selector.in_window(it->first)) {
        scores.erase(it->first);
        it = candidates.erase(it);
      } else {
        ++it;
      }
    }
    wake.notify_one();
  }

  void audited(const AuditResult& a) {
    bool drift = false;
    json state;
    {
      std::lock_guard<std::mutex> lock(mutex);
      drift = detector.add(!a.agree);
      state = detector.to_json();
      if (drift) declare_drift_locked();
    }
    emit({{"event", "audit"},
          {"id", a.id},
          {"agree", a.agree},
          {"edge", a.edge_prediction},
          {"cloud", a.cloud_prediction},
          {"statistic", state["statistic"]}});
    if (drift) emit_drift("audits", state);
  }

  // True when this makes a job wanted (none was wanted or running).
  bool want_job_locked(const std::string& reason) {
    if (job_wanted || !job_id.empty()) return false;
    job_wanted = true;
    job_reason = reason;
    acked_since_trigger = 0;
    return true;
  }

  void model_installed(const std::string& version) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      detector.reset();
      offload_detector.reset();
      acked_since_model = 0;
    }
    emit({{"event", "model_installed"}, {"version", version}});
  }

  // --- the uploader thread ---------------------------------------------------------------
  void run() {
    std::unique_lock<std::mutex> lock(mutex);
    double retry_at = 0.0;
    while (!stopping) {
      wake.wait_for(lock, std::chrono::duration<double>(options.upload_interval_s));
      if (stopping) break;
      std::deque<Pick> batch;
      batch.swap(picks);
      lock.unlock();
      enqueue(batch);
      if (now_s() >= retry_at) {
        if (!upload() || !follow_job()) retry_at = now_s() + options.retry_s;
      }
      lock.lock();
      counters.pending = queue->size();
      flush_requested = false;
      wake.notify_all();
    }
  }

  void enqueue(std::deque<Pick>& batch) {
    size_t added = 0;
    for (Pick& p : batch) {
      const std::string_view bytes(reinterpret_cast<const char*>(p.pixels.data()), p.pixels.size());
      if (queue->enqueue(bytes, p.metadata) == EnqueueResult::added) ++added;
    }
    if (added == 0) return;
    std::lock_guard<std::mutex> lock(mutex);
    counters.queued += added;
  }

  // Sends what is queued; false when the cloud did not take it.
  bool upload() {
    while (!queue->empty()) {
      DrainResult r;
      try {
        r = drain_upload_queue(*queue, *client, options.device, shape, options.upload_batch, 1);
      } catch (const Error& e) {
        {
          std::lock_guard<std::mutex> lock(mutex);
          ++counters.upload_failures;
        }
        emit({{"event", "upload_failed"}, {"error", e.what()}, {"pending", queue->size()}});
        return false;
      }
      bool triggered = false;
      {
        std::lock_guard<std::mutex> lock(mutex);
        counters.acknowledged += r.acknowledged;
        acked_since_trigger += r.acknowledged;
        acked_since_model += r.acknowledged;
        if (options.uploads_trigger > 0 && acked_since_model >= options.uploads_trigger) {
          triggered = want_job_locked("uploads");
          if (triggered) acked_since_model = 0;
        }
      }
      emit({{"event", "uploaded"}, {"samples", r.acknowledged}, {"bytes", r.bytes_sent}});
      if (triggered) {
        emit({{"event", "upload_trigger"}, {"uploads", options.uploads_trigger}});
      }
      std::lock_guard<std::mutex> lock(mutex);
      if (stopping) break;
    }
    return true;
  }

  // Starts the wanted job or follows the running one; false when the cloud did not answer.
  bool follow_job() {
    std::string id, reason;
    bool submit = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      id = job_id;
      reason = job_reason;
      const bool window_over = drift_until_s < 0.0;
      // After a drift the job waits for the samples it is about; the upload trigger fires
      // once the uploads are there.
      submit = options.jobs && job_wanted && id.empty() &&
               (reason == "uploads" || acked_since_trigger >= options.job_min_new ||
                (window_over && acked_since_trigger > 0));
      if (job_wanted && !options.jobs) {
        // Detection only: report the trigger once and forget it.
        job_wanted = false;
        submit = false;
      }
    }
    try {
      if (submit) {
        const json record = client->submit_job(options.device, options.job_request);
        id = json_field<std::string>(record, "id", "job record");
        {
          std::lock_guard<std::mutex> lock(mutex);
          job_id = id;
          job_wanted = false;
          ++counters.jobs_submitted;
        }
        emit({{"event", "job_submitted"}, {"job", id}, {"reason", reason}});
        return true;
      }
      if (id.empty()) return true;
      const json record = client->job(id);
      const std::string state = json_field<std::string>(record, "state", "job record");
      if (state == "queued" || state == "running") return true;
      {
        std::lock_guard<std::mutex> lock(mutex);
        job_id.clear();
        if (state == "done") {
          ++counters.jobs_done;
        } else {
          ++counters.jobs_failed;
        }
      }
      json event = {{"event", state == "done" ? "job_done" : "job_failed"}, {"job", id},
                    {"state", state}};
      if (record.contains("result")) event["result"] = record["result"];
      if (record.contains("error")) event["error"] = record["error"];
      emit(event);
      return true;
    } catch (const Error& e) {
      emit({{"event", "job_call_failed"}, {"error", e.what()}});
      return false;
    }
  }

  bool flush(double timeout_s) {
    std::unique_lock<std::mutex> lock(mutex);
    for (uint64_t id : selector.flush(now_s())) {
      auto it = candidates.find(id);
      if (it == candidates.end()) continue;
      picks.push_back({std::move(it->second), {{"id", id}, {"score", scores[id]}, {"t_s", now_s()}}});
      ++counters.selected;
    }
    candidates.clear();
    scores.clear();
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(timeout_s));
    for (;;) {
      flush_requested = true;
      wake.notify_all();
      if (picks.empty() && counters.pending == 0 && queue->empty()) return true;
      if (wake.wait_until(lock, deadline) == std::cv_status::timeout) {
        return picks.empty() && queue->empty();
      }
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (stopping) return;
      stopping = true;
    }
    wake.notify_all();
    if (worker.joinable()) worker.join();
    std::deque<Pick> rest;
    {
      std::lock_guard<std::mutex> lock(mutex);
      rest.swap(picks);
    }
    enqueue(rest);  // selected samples are kept for the next run
  }
};

CustomizationLoop::CustomizationLoop(LoopOptions options, const models::ImageShape& shape, int dim,
                                     EventSink on_event)
    : impl_(std::make_unique<Impl>(std::move(options), shape, dim, std::move(on_event))) {}

CustomizationLoop::~CustomizationLoop() { impl_->stop(); }

void CustomizationLoop::observe(const EdgeObservation& observation) { impl_->observe(observation); }

void CustomizationLoop::audited(const AuditResult& audit) { impl_->audited(audit); }

void CustomizationLoop::model_installed(const std::string& version) {
  impl_->model_installed(version);
}

bool CustomizationLoop::flush(double timeout_s) { return impl_->flush(timeout_s); }

void CustomizationLoop::stop() { impl_->stop(); }

LoopStats CustomizationLoop::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  LoopStats s = impl_->counters;
  s.drift = impl_->detector.to_json();
  s.offload_drift = impl_->offload_detector.to_json();
  return s;
}

}  // namespace edgefm::edge
