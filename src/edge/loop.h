#pragma once
// The edge's half of continuous customization: what to upload, when to ask for a new
// model. The runtime (edge/runtime.h) calls observe() for every sample and audited() for every
// audit; the loop
//   1. offers each sample to an UploadSelector (customize/select.h): candidates are samples
//      whose routing score is below the upload threshold; a diverse few of each window are
//      picked within the upload budget (samples per minute and kbit/s of uplink);
//   2. writes the picks to the durable UploadQueue (edge/upload_queue.h) on its own thread and
//      sends them to the customization service, removing them only once acknowledged (a dead
//      cloud only delays them; they survive a restart);
//   3. feeds the audits to a DriftDetector (edge/drift.h), and the routing decisions to a
//      second one against the offload the calibration profile predicts ("offload drift": the
//      model sends far more to the cloud than it was calibrated to); on drift, every sample
//      becomes an upload candidate for `drift_upload_s` (the margins may look fine: the point
//      is to find what changed) and a customization job is wanted;
//   4. starts the job once `job_min_new` samples have been acknowledged since the trigger, and
//      follows it. Without audits, a job is also wanted after `uploads_trigger` uploads since
//      the last model (the periodic path).
// Model download and the swap are the ModelUpdater's (edge/updater.h); it tells the loop with
// model_installed(). Everything the loop does is reported as events (JSON objects with "t_s"
// and "event") for the scenario's timeline. Torch-free.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cloud/client.h"
#include "common/json_io.h"
#include "customize/select.h"
#include "edge/drift.h"
#include "edge/runtime.h"
#include "models/encoder.h"

namespace edgefm::cloud {
class CustomizationClient;
}

namespace edgefm::edge {

class UploadQueue;

struct LoopOptions {
  std::string device = "edge";
  std::filesystem::path queue_path;  // the durable upload queue (SQLite file); required
  cloud::ClientOptions client = cloud::client_default_options();  // the customization service
  customize::UploadSelectorParams selector;
  // Candidates are the samples the runtime routes to the cloud: the upload threshold follows
  // the routing threshold in force, whatever the score's scale (selector.upload_threshold is
  // then unused). Off: candidates are the samples below selector.upload_threshold.
  bool upload_routed = false;
  size_t upload_batch = 32;        // samples per upload request
  double upload_interval_s = 0.5;  // the uploader wakes up at least this often
  double retry_s = 2.0;            // wait after a failed upload or job call
  DriftOptions drift = drift_default_options();
  // Offload drift: each sample is a Bernoulli event "routed to the cloud" with expected rate
  // p0 = the observation's expected_offload (clamped to [0.02, 0.9]) against p1 = p0 +
  // offload_rise; samples without an expected offload are skipped. The detector's own rates
  // are unused. Measured in the scenario: 18-27 % routed against 18 % expected before the
  // shift, 60-66 % after it.
  bool offload_drift = true;
  double offload_rise = 0.3;
  DriftOptions offload_detector = {.baseline_rate = 0.2, .drift_rate = 0.5, .threshold = 15.0,
                                   .min_audits = 100, .window = 500};
  double drift_upload_s = 30.0;    // after a drift: every sample is a candidate this long
  bool jobs = true;                // start customization jobs (false: detect and upload only)
  json job_request = json::object();  // the body of every job (profile, budget, epochs, ...)
  size_t job_min_new = 200;        // acknowledged samples since the trigger before the job
  size_t uploads_trigger = 0;      // want a job after this many uploads since the last model
                                   // (0: only on drift)
};
LoopOptions loop_default_options();

struct LoopStats {
  size_t observed = 0;
  size_t selected = 0;        // picked by the selector
  size_t queued = 0;          // written to the queue (duplicates by content not counted)
  size_t acknowledged = 0;    // removed from the queue after the cloud acknowledged them
  size_t upload_failures = 0;
  size_t drifts = 0;          // from audits and from the offload, together
  size_t jobs_submitted = 0, jobs_done = 0, jobs_failed = 0;
  size_t pending = 0;         // in the queue now
  json drift;                 // DriftDetector::to_json() of the audits
  json offload_drift;         // ... of the routing decisions
  json to_json() const;
};

class CustomizationLoop {
 public:
  using EventSink = std::function<void(const json& event)>;

  // Opens the queue (samples left from an earlier run are sent first) and starts the
  // uploader thread. `shape` is the samples' shape; `dim` the edge embedding's. Throws Error
  // on bad options or an unreadable queue file.
  CustomizationLoop(LoopOptions options, const models::ImageShape& shape, int dim,
                    EventSink on_event = {});
  ~CustomizationLoop();  // stop()
  CustomizationLoop(const CustomizationLoop&) = delete;
  CustomizationLoop& operator=(const CustomizationLoop&) = delete;

  // The runtime's hooks (RuntimeOptions::observer / on_audit).
  void observe(const EdgeObservation& observation);
  void audited(const AuditResult& audit);
  // A new model is in force: the drift test and the upload count start again.
  void model_installed(const std::string& version);

  // Hands the open selection window to the uploader and waits (at most timeout_s) until the
  // queue is empty; false when items are left (e.g. the cloud is down).
  bool flush(double timeout_s);
  // Stops the uploader (what is queued stays on disk). Idempotent.
  void stop();

  LoopStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefm::edge
