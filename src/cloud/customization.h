#pragma once
// The customization service: a REST extension of the cloud service (docs/customization.md).
// Devices upload unlabeled samples (deduplicated by SHA-256 of their bytes), ask for a
// customization job with their resource profile and budgets, follow its progress and fetch
// the versioned artifact it publishes. Torch-free: the job itself is a JobRunner injected by
// the caller (customize/service_job.h has the real one), so this library stays light.
//
// On disk, under the service's root folder, one folder per device:
//   <device>/samples/<sha256>.u8     the sample's bytes (one uint8 image, C x H x W)
//   <device>/samples/<sha256>.json   its metadata as uploaded (when not empty)
//   <device>/jobs/<id>.json          each job's record, rewritten at every state change
//   <device>/artifacts/v<N>.pt       published artifacts; v<N>.json is their metadata and is
//                                    written last, so a version exists once its .json does
// A restarted service finds samples, artifacts and finished jobs again; jobs that were queued
// run again, jobs that were running when it stopped are marked failed.
//
// With a device registry (cloud/device_registry.h) every device has a token of its own that
// reaches only that device's samples, jobs and artifacts (403 otherwise); the admin token
// reaches every device and lists them. Jobs run on `job_workers` threads in a fair order
// (FairJobQueue).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cloud/device_registry.h"
#include "cloud/server.h"
#include "common/error.h"
#include "common/json_io.h"
#include "models/encoder.h"

namespace edgefm::cloud {

// What a job runner gets: the device's samples at the moment the job starts, the request as
// posted, the device's latest artifact (for a warm start) and where to write the new one.
struct CustomizationJob {
  std::string id;
  std::string device;
  json request;  // the POSTed job body (validated by the runner's validator, if any)
  int version = 0;  // the artifact version this job publishes
  models::ImageShape sample_shape;
  std::vector<std::string> sample_hashes;  // sorted; sample i is samples[i*bytes, (i+1)*bytes)
  std::vector<uint8_t> samples;
  std::optional<json> previous;                   // metadata of the latest artifact
  std::filesystem::path previous_artifact;        // its file; empty when none
  std::filesystem::path output;                   // the runner writes the artifact here

  size_t sample_count() const { return sample_hashes.size(); }
  size_t sample_bytes() const { return static_cast<size_t>(sample_shape.numel()); }
};

// Thrown through a job's progress callback when the job is cancelled or the service stops.
class JobCancelled : public Error {
 public:
  using Error::Error;
};

// Progress in [0, 1] with a short message; throws JobCancelled when the job should stop.
using JobProgress = std::function<void(double fraction, const std::string& message)>;
// Runs a job: writes the artifact to job.output and returns a summary for the artifact's
// metadata, which must hold "arch". An exception fails the job with its message.
using JobRunner = std::function<json(const CustomizationJob& job, const JobProgress& progress)>;
// Checks a job request before it is queued; throws Error (answered 400) when it is wrong.
using JobValidator = std::function<void(const json& request)>;

struct CustomizationOptions {
  std::filesystem::path root;      // the per-device folders live here (created if missing)
  models::ImageShape sample_shape;  // every uploaded sample is one uint8 image of this shape
  size_t max_queued_jobs = 16;     // more jobs waiting than this are refused with 429
  size_t min_samples = 1;          // a job needs at least this many samples (409 otherwise)
  size_t job_workers = 1;          // jobs that run at once (never two of one device)
  // 0: no limit; else a device keeps at most this many samples, the oldest are removed.
  size_t max_samples_per_device = 0;
  // The device registry file; empty: no per-device tokens (the server's token, if any, reaches
  // every device).
  std::filesystem::path devices;
  // With a registry: the token that reaches every device and lists them (usually the
  // server's token); empty: no admin over HTTP.
  std::string admin_token;
  // Non-empty: every published artifact's metadata is signed with this key (HMAC-SHA256,
  // cloud/artifact_signature.h); edges given the same key refuse anything else.
  std::string artifact_key;
  // Called after uploaded samples are stored durably, before the answer is sent (tests and
  // logs); `added` of the request's `count` samples were new.
  std::function<void(const std::string& device, size_t added, size_t count)> on_samples_stored;
};
CustomizationOptions customization_default_options();

enum class JobState { queued, running, done, failed, cancelled };
const char* job_state_name(JobState state);

// A device name: 1-64 of [A-Za-z0-9._-], not starting with '.'. Throws HttpError 400.
void check_device_name(const std::string& device);

struct SamplesAdded {
  std::vector<std::string> acknowledged;  // the SHA-256 of every sample, in upload order
  size_t added = 0;                       // new to this device
  size_t duplicates = 0;                  // already stored (or twice in this upload)
  size_t evicted = 0;                     // removed by the per-device quota (oldest first)
  size_t stored = 0;                      // the device's samples after this upload
};

// The order jobs start in: round robin across devices, and never two running jobs of one
// device (both would publish the same version). A device with a job waiting goes to the end
// of the line when one of its jobs starts, so no job waits behind more than one job of any
// other device. Not thread-safe (the service holds its lock).
class FairJobQueue {
 public:
  void push(const std::string& device, const std::string& id);
  bool remove(const std::string& id);  // a queued job; false when it is not queued
  // The next job to start, as (device, id), marking its device as running; nullopt when no
  // device has a job waiting and none running.
  std::optional<std::pair<std::string, std::string>> pop();
  void finished(const std::string& device);  // the device's running job ended
  size_t queued() const { return queued_count_; }
  size_t running() const { return running_.size(); }

 private:
  std::map<std::string, std::deque<std::string>> queued_;
  std::deque<std::string> turn_;  // devices with jobs waiting, the next one first
  std::set<std::string> running_;
  size_t queued_count_ = 0;
};

// The body of a sample upload (POST .../samples, OIP form: UINT8 'images' of shape
// [N, C, H, W], or [N, H, W] for one channel, and optional BYTES 'metadata', one JSON object
// per image), decoded and checked against the service's sample shape. `json_size`: the
// Inference-Header-Content-Length header. Throws ProtocolError or HttpError 400.
struct SampleUpload {
  size_t count = 0;
  std::vector<uint8_t> images;  // count x shape.numel() bytes
  std::vector<json> metadata;   // empty or one object per image
};
SampleUpload parse_sample_upload(std::string_view body, std::optional<size_t> json_size,
                                 const models::ImageShape& shape);

// The body of a job request (POST .../jobs) as JSON; HttpError 400 when malformed.
// CustomizationService::submit_job checks the rest.
json parse_job_request(std::string_view body);

class CustomizationService {
 public:
  // Creates the root folder, loads the job records kept there and starts the worker.
  CustomizationService(CustomizationOptions options, JobRunner runner,
                       JobValidator validator = {});
  ~CustomizationService();  // stop()
  CustomizationService(const CustomizationService&) = delete;
  CustomizationService& operator=(const CustomizationService&) = delete;

  // The routes to serve: pass it to CloudServer (the service must outlive the server).
  ServerExtension extension();
  // For ServerOptions::accept_token: the registry's device tokens; empty without a registry.
  std::function<bool(const std::string& token)> token_check();
  // Prometheus text: samples stored and evicted per device, jobs queued and running.
  std::string metrics_text();
  DeviceRegistry* registry() { return registry_.get(); }  // null without one

  // ---- the API behind the routes (also usable in process) -----------------------------
  // `samples`: count x sample_bytes; `metadata`: empty or one JSON object per sample.
  SamplesAdded add_samples(const std::string& device, const uint8_t* samples, size_t count,
                           const std::vector<json>& metadata = {});
  size_t sample_count(const std::string& device);
  // Queues a job; returns its record. HttpError 400 (bad request), 409 (too few samples),
  // 429 (queue full), 503 (stopping).
  json submit_job(const std::string& device, const json& request);
  json job(const std::string& id) const;  // HttpError 404 when unknown
  std::vector<json> jobs(const std::string& device) const;
  std::string job_device(const std::string& id) const;  // HttpError 404 when unknown
  // Cancels a queued or running job (a running one stops at its next progress report).
  json cancel_job(const std::string& id);
  std::optional<json> latest_artifact(const std::string& device) const;
  json artifact(const std::string& device, int version) const;  // metadata; 404 when none
  std::filesystem::path artifact_path(const std::string& device, int version) const;
  std::vector<json> artifacts(const std::string& device) const;
  // Waits until no job is queued or running (tests); false on timeout.
  bool wait_idle(double timeout_s);

  // Cancels the running jobs and joins the workers; queued jobs stay queued on disk and run
  // after a restart. Idempotent.
  void stop();

 private:
  struct Job {
    std::string id;
    std::string device;
    json request;
    JobState state = JobState::queued;
    double progress = 0;
    std::string message;
    double created_unix = 0, started_unix = 0, finished_unix = 0;
    json result;  // the artifact metadata when done
    std::string error;
    std::atomic<bool> cancel{false};
    json to_json() const;
  };

  // Who made a request: the admin (everyone, without a registry) or one device.
  struct Caller {
    bool admin = true;
    std::string device;
  };
  Caller caller_of(const HttpRequest& request);
  void require_access(const HttpRequest& request, const std::string& device);  // 403
  void require_admin(const HttpRequest& request);                             // 403

  void work();
  void run_job(Job& job);
  void save_job(const Job& job) const;
  size_t sample_count_locked(const std::string& device);  // store_mutex_ held
  // The device's samples, oldest first (by the time they were stored); store_mutex_ held.
  std::deque<std::string>& sample_order_locked(const std::string& device);
  size_t evict_locked(const std::string& device);  // down to the quota; returns how many
  void load_jobs();
  std::filesystem::path device_dir(const std::string& device) const;

  CustomizationOptions options_;
  JobRunner runner_;
  JobValidator validator_;

  std::unique_ptr<DeviceRegistry> registry_;

  mutable std::mutex store_mutex_;  // samples and artifacts on disk
  std::map<std::string, size_t> sample_counts_;
  std::map<std::string, std::deque<std::string>> sample_order_;  // with a quota only
  std::map<std::string, uint64_t> evicted_;

  mutable std::mutex jobs_mutex_;
  std::condition_variable jobs_changed_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  FairJobQueue queue_;
  bool stopping_ = false;
  std::once_flag stop_once_;
  std::vector<std::thread> workers_;
};

}  // namespace edgefm::cloud
