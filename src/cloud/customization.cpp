#include "cloud/customization.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <set>

#include "cloud/artifact_signature.h"
#include "cloud/oip.h"
#include "common/checksum.h"

namespace edgefm::cloud {

namespace fs = std::filesystem;

namespace {

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_job_id() {
  static std::mutex mutex;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard lock(mutex);
  static const char* digits = "0123456789abcdef";
  std::string id = "job-";
  uint64_t bits = rng();
  for (int i = 0; i < 16; ++i) id += digits[(bits >> (4 * i)) & 15];
  return id;
}

[[noreturn]] void fail_io(const std::string& what, const fs::path& path) {
  throw Error(what + " '" + path.string() + "': " + std::strerror(errno));
}

// Writes `bytes` to `path` so that it is on disk when this returns: a temporary file,
// fsync, rename. The folder's entry is made durable by fsync_dir.
void write_durable(const fs::path& path, std::string_view bytes) {
  fs::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_io("cannot create", tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      fail_io("cannot write", tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail_io("cannot sync", tmp);
  }
  ::close(fd);
  fs::rename(tmp, path);
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_io("cannot open folder", dir);
  ::fsync(fd);
  ::close(fd);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path.string() + "'");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

JobState parse_job_state(const std::string& name) {
  for (JobState s : {JobState::queued, JobState::running, JobState::done, JobState::failed,
                     JobState::cancelled}) {
    if (name == job_state_name(s)) return s;
  }
  fail_expected("job state", "queued, running, done, failed or cancelled", "'" + name + "'");
}

bool terminal(JobState state) {
  return state == JobState::done || state == JobState::failed || state == JobState::cancelled;
}

// "v12.json" -> 12; -1 for anything else.
int artifact_version_of(const fs::path& file) {
  static const std::regex pattern(R"(v([0-9]{1,9})\.json)");
  std::smatch match;
  const std::string name = file.filename().string();
  if (!std::regex_match(name, match, pattern)) return -1;
  return std::stoi(match[1]);
}

int parse_version(const std::string& text) {
  static const std::regex pattern(R"([1-9][0-9]{0,8})");
  if (!std::regex_match(text, pattern)) {
    throw HttpError(400, "artifact version: expected a positive integer or 'latest', got '" +
                             text + "'");
  }
  return std::stoi(text);
}

void reply(HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.body = dump_json(body);
  res.content_type = "application/json";
}

}  // namespace

CustomizationOptions customization_default_options() { return CustomizationOptions{}; }

const char* job_state_name(JobState state) {
  switch (state) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::done: return "done";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "unknown";
}

void check_device_name(const std::string& device) {
  static const std::regex pattern(R"([A-Za-z0-9_-][A-Za-z0-9._-]{0,63})");
  if (!std::regex_match(device, pattern)) {
    throw HttpError(400, "device name: expected 1-64 characters of A-Z a-z 0-9 . _ - not "
                         "starting with '.', got '" + device + "'");
  }
}

json CustomizationService::Job::to_json() const {
  json j = {{"id", id},
            {"device", device},
            {"state", job_state_name(state)},
            {"progress", progress},
            {"message", message},
            {"created_unix", created_unix},
            {"started_unix", started_unix},
            {"finished_unix", finished_unix},
            {"request", request}};
  if (state == JobState::done) {
    j["result"] = result;
    j["version"] = result.value("version", 0);
    j["arch"] = result.value("arch", "");
  } else if (result.is_object() && result.contains("version")) {
    j["version"] = result["version"];  // assigned when the job started
  }
  if (!error.empty()) j["error"] = error;
  return j;
}

CustomizationService::CustomizationService(CustomizationOptions options, JobRunner runner,
                                           JobValidator validator)
    : options_(std::move(options)), runner_(std::move(runner)), validator_(std::move(validator)) {
  if (options_.root.empty()) throw Error("customization service: expected a root folder, got none");
  if (!runner_) throw Error("customization service: expected a job runner, got none");
  if (options_.sample_shape.numel() <= 0) {
    fail_expected("customization service sample shape", "a positive size",
                  std::to_string(options_.sample_shape.numel()));
  }
  if (options_.job_workers < 1) {
    fail_expected("customization service job workers", "at least 1",
                  std::to_string(options_.job_workers));
  }
  fs::create_directories(options_.root);
  if (!options_.devices.empty()) registry_ = std::make_unique<DeviceRegistry>(options_.devices);
  // What every device holds now: for /metrics and the registry's listing.
  for (const auto& entry : fs::directory_iterator(options_.root)) {
    const std::string name = entry.path().filename().string();
    try {
      check_device_name(name);
    } catch (const HttpError&) {
      continue;
    }
    if (!entry.is_directory()) continue;
    size_t count = 0;
    {
      std::lock_guard lock(store_mutex_);
      sample_count_locked(name);
      evict_locked(name);  // a quota lowered since the last run applies at once
      count = sample_count_locked(name);
    }
    if (registry_) {
      registry_->note_samples(name, static_cast<int64_t>(count));
      auto latest = latest_artifact(name);
      registry_->note_model_version(name, latest ? latest->value("version", 0) : 0);
    }
  }
  if (registry_) registry_->flush();
  load_jobs();
  for (size_t i = 0; i < options_.job_workers; ++i) workers_.emplace_back([this] { work(); });
}

// ---- the fair queue ---------------------------------------------------------------------

void FairJobQueue::push(const std::string& device, const std::string& id) {
  auto& jobs = queued_[device];
  if (jobs.empty()) turn_.push_back(device);
  jobs.push_back(id);
  ++queued_count_;
}

bool FairJobQueue::remove(const std::string& id) {
  for (auto it = queued_.begin(); it != queued_.end(); ++it) {
    auto& jobs = it->second;
    auto found = std::find(jobs.begin(), jobs.end(), id);
    if (found == jobs.end()) continue;
    jobs.erase(found);
    --queued_count_;
    if (jobs.empty()) {
      turn_.erase(std::remove(turn_.begin(), turn_.end(), it->first), turn_.end());
      queued_.erase(it);
    }
    return true;
  }
  return false;
}

std::optional<std::pair<std::string, std::string>> FairJobQueue::pop() {
  for (auto it = turn_.begin(); it != turn_.end(); ++it) {
    const std::string device = *it;
    if (running_.count(device)) continue;
    auto& jobs = queued_.at(device);
    std::string id = jobs.front();
    jobs.pop_front();
    --queued_count_;
    turn_.erase(it);
    if (jobs.empty()) {
      queued_.erase(device);
    } else {
      turn_.push_back(device);
    }
    running_.insert(device);
    return std::make_pair(device, std::move(id));
  }
  return std::nullopt;
}

void FairJobQueue::finished(const std::string& device) { running_.erase(device); }

CustomizationService::~CustomizationService() { stop(); }

fs::path CustomizationService::device_dir(const std::string& device) const {
  return options_.root / device;
}

// ---- samples ----------------------------------------------------------------------------

SamplesAdded CustomizationService::add_samples(const std::string& device, const uint8_t* samples,
                                               size_t count, const std::vector<json>& metadata) {
  check_device_name(device);
  if (!metadata.empty() && metadata.size() != count) {
    throw HttpError(400, "sample metadata: expected one entry per sample (" +
                             std::to_string(count) + "), got " + std::to_string(metadata.size()));
  }
  const size_t bytes = static_cast<size_t>(options_.sample_shape.numel());
  SamplesAdded out;
  {
    std::lock_guard lock(store_mutex_);
    const fs::path dir = device_dir(device) / "samples";
    fs::create_directories(dir);
    sample_count_locked(device);  // counts what is there before anything is added
    if (options_.max_samples_per_device > 0) sample_order_locked(device);
    std::set<std::string> seen;
    for (size_t i = 0; i < count; ++i) {
      std::string_view sample(reinterpret_cast<const char*>(samples) + i * bytes, bytes);
      std::string hash = sha256_hex(sample);
      out.acknowledged.push_back(hash);
      const fs::path file = dir / (hash + ".u8");
      if (!seen.insert(hash).second || fs::exists(file)) {
        ++out.duplicates;
        continue;
      }
      // Metadata first: a sample exists once its .u8 does, and then it is complete.
      if (!metadata.empty() && !(metadata[i].is_object() && metadata[i].empty())) {
        write_durable(dir / (hash + ".json"), dump_json(metadata[i]));
      }
      write_durable(file, sample);
      if (options_.max_samples_per_device > 0) sample_order_locked(device).push_back(hash);
      ++out.added;
    }
    if (out.added > 0) fsync_dir(dir);
    sample_counts_[device] += out.added;
    out.evicted = evict_locked(device);
    out.stored = sample_counts_[device];
  }
  if (registry_) registry_->note_samples(device, static_cast<int64_t>(out.stored));
  if (options_.on_samples_stored) options_.on_samples_stored(device, out.added, count);
  return out;
}

std::deque<std::string>& CustomizationService::sample_order_locked(const std::string& device) {
  auto it = sample_order_.find(device);
  if (it != sample_order_.end()) return it->second;
  std::vector<std::pair<fs::file_time_type, std::string>> found;
  const fs::path dir = device_dir(device) / "samples";
  if (fs::is_directory(dir)) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() != ".u8") continue;
      found.emplace_back(entry.last_write_time(), entry.path().stem().string());
    }
  }
  std::sort(found.begin(), found.end());
  auto& order = sample_order_[device];
  for (auto& [time, hash] : found) order.push_back(std::move(hash));
  return order;
}

size_t CustomizationService::evict_locked(const std::string& device) {
  const size_t limit = options_.max_samples_per_device;
  if (limit == 0 || sample_count_locked(device) <= limit) return 0;
  auto& order = sample_order_locked(device);
  const fs::path dir = device_dir(device) / "samples";
  size_t evicted = 0;
  while (order.size() > limit) {
    // The sample first: it exists as long as its .u8 does.
    std::error_code ignored;
    fs::remove(dir / (order.front() + ".u8"), ignored);
    fs::remove(dir / (order.front() + ".json"), ignored);
    order.pop_front();
    ++evicted;
  }
  fsync_dir(dir);
  sample_counts_[device] = order.size();
  evicted_[device] += evicted;
  return evicted;
}

size_t CustomizationService::sample_count(const std::string& device) {
  check_device_name(device);
  std::lock_guard lock(store_mutex_);
  return sample_count_locked(device);
}

size_t CustomizationService::sample_count_locked(const std::string& device) {
  auto it = sample_counts_.find(device);
  if (it != sample_counts_.end()) return it->second;
  size_t n = 0;
  const fs::path dir = device_dir(device) / "samples";
  if (fs::is_directory(dir)) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() == ".u8") ++n;
    }
  }
  sample_counts_[device] = n;
  return n;
}

// ---- jobs -------------------------------------------------------------------------------

void CustomizationService::save_job(const Job& job) const {
  write_json_file(device_dir(job.device) / "jobs" / (job.id + ".json"), job.to_json());
}

void CustomizationService::load_jobs() {
  std::vector<Job*> requeue;
  for (const auto& device_entry : fs::directory_iterator(options_.root)) {
    const fs::path jobs_dir = device_entry.path() / "jobs";
    if (!fs::is_directory(jobs_dir)) continue;
    for (const auto& entry : fs::directory_iterator(jobs_dir)) {
      if (entry.path().extension() != ".json") continue;
      json j;
      try {
        j = read_json_file(entry.path());
      } catch (const Error& e) {
        std::fprintf(stderr, "[customization] skipping unreadable job record: %s\n", e.what());
        continue;
      }
      auto job = std::make_unique<Job>();
      const std::string context = "job record " + entry.path().string();
      job->id = json_field<std::string>(j, "id", context);
      job->device = json_field<std::string>(j, "device", context);
      job->state = parse_job_state(json_field<std::string>(j, "state", context));
      job->progress = j.value("progress", 0.0);
      job->message = j.value("message", "");
      job->created_unix = j.value("created_unix", 0.0);
      job->started_unix = j.value("started_unix", 0.0);
      job->finished_unix = j.value("finished_unix", 0.0);
      job->request = j.value("request", json::object());
      job->result = j.value("result", json());
      job->error = j.value("error", "");
      if (job->state == JobState::running) {
        job->state = JobState::failed;
        job->error = "interrupted: the service stopped while the job ran";
        job->message = job->error;
        job->finished_unix = now_unix();
        save_job(*job);
      }
      if (job->state == JobState::queued) requeue.push_back(job.get());
      jobs_[job->id] = std::move(job);
    }
  }
  std::sort(requeue.begin(), requeue.end(),
            [](const Job* a, const Job* b) { return a->created_unix < b->created_unix; });
  for (const Job* job : requeue) queue_.push(job->device, job->id);
}

json CustomizationService::submit_job(const std::string& device, const json& request) {
  check_device_name(device);
  if (!request.is_object()) {
    throw HttpError(400, std::string("job request: expected a JSON object, got ") +
                             request.type_name());
  }
  if (validator_) {
    try {
      validator_(request);
    } catch (const HttpError&) {
      throw;
    } catch (const std::exception& e) {
      throw HttpError(400, e.what());
    }
  }
  const size_t samples = sample_count(device);
  if (samples < options_.min_samples) {
    throw HttpError(409, "device '" + device + "' has " + std::to_string(samples) +
                             " uploaded samples; a job needs at least " +
                             std::to_string(options_.min_samples));
  }
  std::lock_guard lock(jobs_mutex_);
  if (stopping_) throw HttpError(503, "the customization service is stopping");
  if (queue_.queued() >= options_.max_queued_jobs) {
    throw HttpError(429, "job queue full: " + std::to_string(queue_.queued()) +
                             " jobs wait already (the limit)");
  }
  auto job = std::make_unique<Job>();
  job->id = random_job_id();
  while (jobs_.count(job->id)) job->id = random_job_id();
  job->device = device;
  job->request = request;
  job->created_unix = now_unix();
  job->message = "queued";
  fs::create_directories(device_dir(device) / "jobs");
  save_job(*job);
  json out = job->to_json();
  queue_.push(device, job->id);
  jobs_[job->id] = std::move(job);
  jobs_changed_.notify_all();
  return out;
}

json CustomizationService::job(const std::string& id) const {
  std::lock_guard lock(jobs_mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) throw HttpError(404, "unknown job '" + id + "'");
  return it->second->to_json();
}

std::vector<json> CustomizationService::jobs(const std::string& device) const {
  check_device_name(device);
  std::lock_guard lock(jobs_mutex_);
  std::vector<const Job*> found;
  for (const auto& [id, job] : jobs_) {
    if (job->device == device) found.push_back(job.get());
  }
  std::sort(found.begin(), found.end(),
            [](const Job* a, const Job* b) { return a->created_unix < b->created_unix; });
  std::vector<json> out;
  for (const Job* job : found) out.push_back(job->to_json());
  return out;
}

std::string CustomizationService::job_device(const std::string& id) const {
  std::lock_guard lock(jobs_mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) throw HttpError(404, "unknown job '" + id + "'");
  return it->second->device;
}

json CustomizationService::cancel_job(const std::string& id) {
  std::lock_guard lock(jobs_mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) throw HttpError(404, "unknown job '" + id + "'");
  Job& job = *it->second;
  if (terminal(job.state)) {
    throw HttpError(409, "job '" + id + "' is already " + job_state_name(job.state));
  }
  job.cancel = true;
  if (job.state == JobState::queued) {
    queue_.remove(id);
    job.state = JobState::cancelled;
    job.message = "cancelled before it ran";
    job.finished_unix = now_unix();
    save_job(job);
    jobs_changed_.notify_all();
  } else {
    job.message = "cancelling";
  }
  return job.to_json();
}

bool CustomizationService::wait_idle(double timeout_s) {
  std::unique_lock lock(jobs_mutex_);
  return jobs_changed_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                                [this] { return queue_.queued() == 0 && queue_.running() == 0; });
}

void CustomizationService::work() {
  std::unique_lock lock(jobs_mutex_);
  for (;;) {
    std::optional<std::pair<std::string, std::string>> next;
    jobs_changed_.wait(lock, [this, &next] { return stopping_ || (next = queue_.pop()); });
    if (stopping_) {
      if (next) queue_.finished(next->first);
      return;
    }
    Job& job = *jobs_.at(next->second);
    job.state = JobState::running;
    job.started_unix = now_unix();
    job.message = "starting";
    save_job(job);
    lock.unlock();
    run_job(job);
    lock.lock();
    queue_.finished(job.device);
    jobs_changed_.notify_all();
  }
}

void CustomizationService::run_job(Job& job) {
  CustomizationJob input;
  fs::path output;
  std::string failure;
  JobState end_state = JobState::failed;
  json result;
  try {
    input.id = job.id;
    input.device = job.device;
    input.request = job.request;
    input.sample_shape = options_.sample_shape;
    const size_t bytes = input.sample_bytes();
    {
      std::lock_guard lock(store_mutex_);
      const fs::path dir = device_dir(job.device) / "samples";
      if (fs::is_directory(dir)) {
        for (const auto& entry : fs::directory_iterator(dir)) {
          if (entry.path().extension() == ".u8") input.sample_hashes.push_back(entry.path().stem());
        }
      }
      std::sort(input.sample_hashes.begin(), input.sample_hashes.end());
      input.samples.reserve(input.sample_hashes.size() * bytes);
      for (const auto& hash : input.sample_hashes) {
        std::string data = read_file(dir / (hash + ".u8"));
        if (data.size() != bytes) {
          fail_expected("stored sample " + hash, std::to_string(bytes) + " bytes",
                        std::to_string(data.size()));
        }
        input.samples.insert(input.samples.end(), data.begin(), data.end());
      }
    }
    input.previous = latest_artifact(job.device);
    input.version = input.previous ? input.previous->value("version", 0) + 1 : 1;
    if (input.previous) input.previous_artifact = artifact_path(job.device, input.version - 1);
    const fs::path artifacts = device_dir(job.device) / "artifacts";
    fs::create_directories(artifacts);
    output = artifacts / (".v" + std::to_string(input.version) + "-" + job.id + ".partial");
    input.output = output;
    {
      std::lock_guard lock(jobs_mutex_);
      job.result = {{"version", input.version}};
      job.message = "running on " + std::to_string(input.sample_count()) + " samples";
    }

    JobProgress progress = [this, &job](double fraction, const std::string& message) {
      std::lock_guard lock(jobs_mutex_);
      if (job.cancel) throw JobCancelled("cancelled");
      if (stopping_) throw JobCancelled("the service stopped");
      job.progress = std::clamp(fraction, 0.0, 1.0);
      job.message = message;
    };
    json summary = runner_(input, progress);
    {
      std::lock_guard lock(jobs_mutex_);
      if (job.cancel) throw JobCancelled("cancelled");
    }
    if (!summary.is_object() || !summary.contains("arch") || !summary["arch"].is_string()) {
      throw Error("job runner: expected a summary object with 'arch', got " + summary.dump());
    }
    if (!fs::is_regular_file(output)) throw Error("job runner wrote no artifact");

    // Publish: the artifact under its version, then its metadata (the version's existence).
    std::lock_guard lock(store_mutex_);
    const fs::path final_path = artifacts / ("v" + std::to_string(input.version) + ".pt");
    const std::string sha = sha256_file(output);
    const auto size = fs::file_size(output);
    fs::rename(output, final_path);
    fsync_dir(artifacts);
    result = {{"device", job.device},
              {"version", input.version},
              {"arch", summary["arch"]},
              {"sha256", sha},
              {"size", size},
              {"created_unix", now_unix()},
              {"job", job.id},
              {"samples", input.sample_count()},
              {"summary", summary}};
    if (!options_.artifact_key.empty()) {
      result["signature"] = artifact_signature(result, options_.artifact_key);
    }
    write_json_file(artifacts / ("v" + std::to_string(input.version) + ".json"), result);
    fsync_dir(artifacts);
    end_state = JobState::done;
    if (registry_) registry_->note_model_version(job.device, input.version);
  } catch (const JobCancelled& e) {
    end_state = JobState::cancelled;
    failure = e.what();
  } catch (const std::exception& e) {
    end_state = JobState::failed;
    failure = e.what();
  }
  if (end_state != JobState::done && !output.empty()) {
    std::error_code ignored;
    fs::remove(output, ignored);
  }
  std::lock_guard lock(jobs_mutex_);
  job.state = end_state;
  job.finished_unix = now_unix();
  if (end_state == JobState::done) {
    job.progress = 1.0;
    job.result = result;
    job.message = "published version " + std::to_string(result["version"].get<int>()) + " (" +
                  result["arch"].get<std::string>() + ")";
  } else if (end_state == JobState::cancelled) {
    job.message = failure;
    if (stopping_ && !job.cancel) {
      job.state = JobState::failed;
      job.error = "interrupted: the service stopped while the job ran";
      job.message = job.error;
    }
  } else {
    job.error = failure;
    job.message = "failed: " + failure;
  }
  save_job(job);
}

void CustomizationService::stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard lock(jobs_mutex_);
      stopping_ = true;
      jobs_changed_.notify_all();
    }
    for (auto& worker : workers_) {
      if (worker.joinable()) worker.join();
    }
    if (registry_) {
      try {
        registry_->flush();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[customization] cannot update the device registry: %s\n", e.what());
      }
    }
  });
}

// ---- artifacts --------------------------------------------------------------------------

std::vector<json> CustomizationService::artifacts(const std::string& device) const {
  check_device_name(device);
  std::vector<std::pair<int, fs::path>> found;
  const fs::path dir = device_dir(device) / "artifacts";
  if (fs::is_directory(dir)) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      int version = artifact_version_of(entry.path());
      if (version > 0) found.emplace_back(version, entry.path());
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<json> out;
  for (const auto& [version, path] : found) out.push_back(read_json_file(path));
  return out;
}

std::optional<json> CustomizationService::latest_artifact(const std::string& device) const {
  auto all = artifacts(device);
  if (all.empty()) return std::nullopt;
  return all.back();
}

json CustomizationService::artifact(const std::string& device, int version) const {
  check_device_name(device);
  const fs::path meta = device_dir(device) / "artifacts" / ("v" + std::to_string(version) + ".json");
  if (!fs::is_regular_file(meta)) {
    throw HttpError(404, "device '" + device + "' has no artifact version " +
                             std::to_string(version));
  }
  return read_json_file(meta);
}

fs::path CustomizationService::artifact_path(const std::string& device, int version) const {
  return device_dir(device) / "artifacts" / ("v" + std::to_string(version) + ".pt");
}

// ---- request bodies ---------------------------------------------------------------------

SampleUpload parse_sample_upload(std::string_view body, std::optional<size_t> json_size,
                                 const models::ImageShape& shape) {
  InferRequest request = decode_request(body, json_size);
  for (const auto& t : request.inputs) {
    if (t.name != "images" && t.name != "metadata") {
      throw HttpError(400, "sample upload: unexpected input '" + t.name +
                               "'; it takes 'images' (UINT8) and optional 'metadata' (BYTES)");
    }
  }
  const Tensor* images = request.input("images");
  if (images == nullptr) throw HttpError(400, "sample upload: expected an input 'images'");
  if (images->datatype != DataType::uint8) {
    throw HttpError(400, std::string("input 'images': expected datatype UINT8, got ") +
                             datatype_name(images->datatype));
  }
  const auto& s = images->shape;
  const bool rank4 = s.size() == 4 && s[1] == shape.channels && s[2] == shape.height &&
                     s[3] == shape.width;
  const bool rank3 = shape.channels == 1 && s.size() == 3 && s[1] == shape.height &&
                     s[2] == shape.width;
  if (!(rank4 || rank3) || s[0] < 1) {
    std::string expected = "[N," + std::to_string(shape.channels) + "," +
                           std::to_string(shape.height) + "," + std::to_string(shape.width) + "]";
    throw HttpError(400, "input 'images': expected shape " + expected + " with N >= 1, got " +
                             shape_string(s));
  }
  SampleUpload upload;
  upload.count = static_cast<size_t>(s[0]);
  if (const Tensor* meta = request.input("metadata")) {
    if (meta->datatype != DataType::bytes || meta->strings.size() != upload.count) {
      throw HttpError(400, "input 'metadata': expected BYTES of shape [" +
                               std::to_string(upload.count) +
                               "] (one JSON object per image), got " +
                               datatype_name(meta->datatype) + " " + shape_string(meta->shape));
    }
    for (size_t i = 0; i < upload.count; ++i) {
      json m;
      try {
        m = parse_untrusted_json(meta->strings[i]);
      } catch (const JsonInputError& e) {
        throw HttpError(400, "input 'metadata' element " + std::to_string(i) + ": " + e.what());
      }
      if (!m.is_object()) {
        throw HttpError(400, "input 'metadata' element " + std::to_string(i) +
                                 ": expected a JSON object, got '" +
                                 meta->strings[i].substr(0, 80) + "'");
      }
      upload.metadata.push_back(std::move(m));
    }
  }
  for (auto& t : request.inputs) {
    if (t.name == "images") upload.images = std::move(t.raw);
  }
  return upload;
}

json parse_job_request(std::string_view body) {
  try {
    return parse_untrusted_json(body);
  } catch (const JsonInputError& e) {
    throw HttpError(400, std::string("job request: malformed JSON: ") + e.what());
  }
}

// ---- who may do what --------------------------------------------------------------------

CustomizationService::Caller CustomizationService::caller_of(const HttpRequest& request) {
  if (!registry_) return {};
  const std::string token = bearer_token_of(request.header("Authorization").value_or(""));
  if (!options_.admin_token.empty() && constant_time_equal(token, options_.admin_token)) return {};
  if (auto device = registry_->authenticate(token)) return {false, *device};
  throw HttpError(401, "wrong bearer token");
}

void CustomizationService::require_access(const HttpRequest& request, const std::string& device) {
  const Caller caller = caller_of(request);
  if (caller.admin || caller.device == device) return;
  throw HttpError(403, "the token of device '" + caller.device + "' does not reach device '" +
                           device + "'");
}

void CustomizationService::require_admin(const HttpRequest& request) {
  const Caller caller = caller_of(request);
  if (caller.admin) return;
  throw HttpError(403, "the token of device '" + caller.device +
                           "' does not reach the device list; it needs the admin token");
}

std::function<bool(const std::string&)> CustomizationService::token_check() {
  if (!registry_) return {};
  return [this](const std::string& token) { return registry_->authenticate(token).has_value(); };
}

std::string CustomizationService::metrics_text() {
  std::map<std::string, size_t> samples;
  std::map<std::string, uint64_t> evicted;
  {
    std::lock_guard lock(store_mutex_);
    samples = sample_counts_;
    evicted = evicted_;
  }
  size_t queued = 0, running = 0;
  {
    std::lock_guard lock(jobs_mutex_);
    queued = queue_.queued();
    running = queue_.running();
  }
  // Device names are [A-Za-z0-9._-]: nothing to escape in a label value.
  std::string out;
  out += "# HELP edgefm_customization_samples Samples stored per device.\n";
  out += "# TYPE edgefm_customization_samples gauge\n";
  for (const auto& [device, n] : samples) {
    out += "edgefm_customization_samples{device=\"" + device + "\"} " + std::to_string(n) + "\n";
  }
  out += "# HELP edgefm_customization_samples_evicted_total Samples removed by the per-device "
         "quota (oldest first), per device.\n";
  out += "# TYPE edgefm_customization_samples_evicted_total counter\n";
  for (const auto& [device, n] : evicted) {
    out += "edgefm_customization_samples_evicted_total{device=\"" + device + "\"} " +
           std::to_string(n) + "\n";
  }
  out += "# HELP edgefm_customization_jobs Customization jobs waiting and running.\n";
  out += "# TYPE edgefm_customization_jobs gauge\n";
  out += "edgefm_customization_jobs{state=\"queued\"} " + std::to_string(queued) + "\n";
  out += "edgefm_customization_jobs{state=\"running\"} " + std::to_string(running) + "\n";
  out += "# HELP edgefm_customization_job_workers Threads running customization jobs.\n";
  out += "# TYPE edgefm_customization_job_workers gauge\n";
  out += "edgefm_customization_job_workers " + std::to_string(options_.job_workers) + "\n";
  return out;
}

// ---- routes -----------------------------------------------------------------------------

ServerExtension CustomizationService::extension() {
  const std::string device = "/v2/customization/devices/([^/]+)";
  ServerExtension ext;
  ext.name = "edgefm_customization";
  ext.metrics = [this] { return metrics_text(); };
  ext.routes.push_back({"GET", "/v2/customization/devices", [this](const HttpRequest& req, HttpResponse& res) {
    if (!registry_) {
      throw HttpError(404, "no device registry: the service runs without per-device tokens");
    }
    require_admin(req);
    json list = json::array();
    for (const auto& d : registry_->devices()) {
      list.push_back(device_to_json(d));
    }
    reply(res, 200, {{"devices", list}});
  }});
  // Adding and revoking over HTTP, as `edgefm devices add|revoke` do on the file.
  ext.routes.push_back({"POST", "/v2/customization/devices", [this](const HttpRequest& req, HttpResponse& res) {
    if (!registry_) {
      throw HttpError(404, "no device registry: the service runs without per-device tokens");
    }
    require_admin(req);
    const json body = parse_job_request(req.body);
    if (!body.is_object() || !body.contains("device") || !body["device"].is_string()) {
      throw HttpError(400, "device registration: expected {\"device\": NAME}, got " +
                               body.dump().substr(0, 80));
    }
    const std::string name = body["device"];
    check_device_name(name);
    if (registry_->contains(name)) {
      throw HttpError(409, "device '" + name + "' is already registered; revoke it first to "
                           "give it a new token");
    }
    const std::string token = add_registry_device(registry_->file(), name);
    reply(res, 201, {{"device", name}, {"token", token}});
  }});
  ext.routes.push_back({"DELETE", device, [this](const HttpRequest& req, HttpResponse& res) {
    if (!registry_) {
      throw HttpError(404, "no device registry: the service runs without per-device tokens");
    }
    const std::string& name = req.matches.at(0);
    require_admin(req);
    if (!registry_->contains(name)) {
      throw HttpError(404, "no active device '" + name + "' in the registry");
    }
    revoke_registry_device(registry_->file(), name);
    reply(res, 200, {{"device", name}, {"revoked", true}});
  }});
  ext.routes.push_back({"POST", device + "/samples", [this](const HttpRequest& req, HttpResponse& res) {
    const std::string& name = req.matches.at(0);
    check_device_name(name);
    require_access(req, name);
    std::optional<size_t> json_size;
    if (auto h = req.header(kHeaderContentLength)) json_size = parse_header_content_length(*h);
    const SampleUpload upload = parse_sample_upload(req.body, json_size, options_.sample_shape);
    auto added = add_samples(name, upload.images.data(), upload.count, upload.metadata);
    reply(res, 200, {{"device", name},
                     {"acknowledged", added.acknowledged},
                     {"added", added.added},
                     {"duplicates", added.duplicates},
                     {"evicted", added.evicted},
                     {"samples", added.stored}});
  }});
  ext.routes.push_back({"GET", device, [this](const HttpRequest& req, HttpResponse& res) {
    const std::string& name = req.matches.at(0);
    require_access(req, name);
    auto latest = latest_artifact(name);
    reply(res, 200, {{"device", name},
                     {"samples", sample_count(name)},
                     {"jobs", jobs(name).size()},
                     {"latest_version", latest ? latest->value("version", 0) : 0}});
  }});
  ext.routes.push_back({"POST", device + "/jobs", [this](const HttpRequest& req, HttpResponse& res) {
    require_access(req, req.matches.at(0));
    reply(res, 202, submit_job(req.matches.at(0), parse_job_request(req.body)));
  }});
  ext.routes.push_back({"GET", device + "/jobs", [this](const HttpRequest& req, HttpResponse& res) {
    require_access(req, req.matches.at(0));
    reply(res, 200, {{"jobs", jobs(req.matches.at(0))}});
  }});
  ext.routes.push_back({"GET", "/v2/customization/jobs/([^/]+)",
                        [this](const HttpRequest& req, HttpResponse& res) {
                          require_access(req, job_device(req.matches.at(0)));
                          reply(res, 200, job(req.matches.at(0)));
                        }});
  ext.routes.push_back({"DELETE", "/v2/customization/jobs/([^/]+)",
                        [this](const HttpRequest& req, HttpResponse& res) {
                          require_access(req, job_device(req.matches.at(0)));
                          reply(res, 200, cancel_job(req.matches.at(0)));
                        }});
  ext.routes.push_back({"GET", device + "/artifacts", [this](const HttpRequest& req, HttpResponse& res) {
    require_access(req, req.matches.at(0));
    reply(res, 200, {{"artifacts", artifacts(req.matches.at(0))}});
  }});
  auto metadata_of = [this](const std::string& name, const std::string& version) {
    if (version == "latest") {
      auto latest = latest_artifact(name);
      if (!latest) throw HttpError(404, "device '" + name + "' has no artifact yet");
      return *latest;
    }
    return artifact(name, parse_version(version));
  };
  ext.routes.push_back({"GET", device + "/artifacts/([^/]+)/metadata",
                        [this, metadata_of](const HttpRequest& req, HttpResponse& res) {
                          require_access(req, req.matches.at(0));
                          reply(res, 200, metadata_of(req.matches.at(0), req.matches.at(1)));
                        }});
  ext.routes.push_back({"GET", device + "/artifacts/([^/]+)",
                        [this, metadata_of](const HttpRequest& req, HttpResponse& res) {
    const std::string& name = req.matches.at(0);
    const std::string& version = req.matches.at(1);
    require_access(req, name);
    json meta = metadata_of(name, version);
    if (version == "latest") {
      reply(res, 200, meta);
      return;
    }
    std::string bytes;
    {
      std::lock_guard lock(store_mutex_);
      bytes = read_file(artifact_path(name, meta["version"].get<int>()));
    }
    res.status = 200;
    res.body = std::move(bytes);
    res.content_type = "application/octet-stream";
    res.headers["X-Edgefm-Sha256"] = meta.value("sha256", "");
    res.headers["X-Edgefm-Artifact-Version"] = std::to_string(meta["version"].get<int>());
    res.headers["X-Edgefm-Arch"] = meta.value("arch", "");
  }});
  return ext;
}

}  // namespace edgefm::cloud
