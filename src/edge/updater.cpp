#include "edge/updater.h"

#include <chrono>
#include <system_error>

#include "cloud/customization_client.h"
#include "common/error.h"
#include "models/student.h"

namespace edgefm::edge {

namespace fs = std::filesystem;

namespace {

std::string shape_text(const models::ImageShape& s) {
  return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width);
}

// "v3" (built without operator+ on a temporary, which GCC 12 warns about wrongly).
std::string version_label(int version) {
  std::string label = "v";
  label += std::to_string(version);
  return label;
}

bool same_shape(const models::ImageShape& a, const models::ImageShape& b) {
  return a.channels == b.channels && a.height == b.height && a.width == b.width;
}

// Why a loaded model cannot replace the running one; empty when it can.
std::string incompatibility(const EdgeModel& model, const UpdaterOptions& options) {
  if (!model.encoder) return "no image encoder";
  if (options.expected_input && !same_shape(model.encoder->input_shape(), *options.expected_input)) {
    return "input shape " + shape_text(model.encoder->input_shape()) + ", expected " +
           shape_text(*options.expected_input);
  }
  if (model.encoder->embedding_dim() != model.pool.dim()) {
    return "embedding dimension " + std::to_string(model.encoder->embedding_dim()) +
           " but its pool has dimension " + std::to_string(model.pool.dim());
  }
  if (options.expected_dim > 0 && model.pool.dim() != options.expected_dim) {
    return "embedding dimension " + std::to_string(model.pool.dim()) + ", expected " +
           std::to_string(options.expected_dim);
  }
  if (model.pool.size() < 2) {
    return "a pool of " + std::to_string(model.pool.size()) + " class(es), expected at least 2";
  }
  return {};
}

}  // namespace

UpdaterOptions updater_default_options() { return UpdaterOptions{}; }

const char* update_status_name(UpdateStatus status) {
  switch (status) {
    case UpdateStatus::none: return "none";
    case UpdateStatus::installed: return "installed";
    case UpdateStatus::rejected: return "rejected";
    case UpdateStatus::unreachable: return "unreachable";
  }
  return "?";
}

ModelUpdater::ModelUpdater(UpdaterOptions options, int current_version, Install install, Log log)
    : options_(std::move(options)),
      install_(std::move(install)),
      log_(std::move(log)),
      current_(current_version) {
  if (options_.device.empty()) fail_expected("model updater", "a device name", "an empty name");
  if (options_.dir.empty()) fail_expected("model updater", "a download folder", "an empty path");
  if (!(options_.poll_s > 0.0)) {
    fail_expected("model updater poll interval", "> 0 s", std::to_string(options_.poll_s));
  }
  if (!install_) fail_expected("model updater", "an install function", "none");
  if (current_version < 0) {
    fail_expected("model updater current version", ">= 0", std::to_string(current_version));
  }
  client_ = std::make_unique<cloud::CustomizationClient>(options_.client);
}

ModelUpdater::~ModelUpdater() { stop(); }

void ModelUpdater::log(const std::string& line) const {
  if (log_) log_(line);
}

std::string ModelUpdater::current_label() const {
  const int current = current_.load();
  return current > 0 ? version_label(current) : std::string("the initial model");
}

UpdateOutcome ModelUpdater::reject(int version, const std::string& why) {
  rejected_.store(std::max(rejected_.load(), version));
  std::error_code ignored;
  fs::remove(options_.dir / (version_label(version) + ".pt"), ignored);
  UpdateOutcome outcome{UpdateStatus::rejected, version,
                        "model " + version_label(version) + " rejected: " + why + "; keeping " +
                            current_label()};
  log(outcome.message);
  return outcome;
}

UpdateOutcome ModelUpdater::last_outcome() const {
  std::lock_guard<std::mutex> lock(outcome_mutex_);
  return last_outcome_;
}

UpdateOutcome ModelUpdater::check_once() {
  std::lock_guard<std::mutex> check_lock(check_mutex_);
  auto unreachable = [&](int version, const std::string& why) {
    UpdateOutcome outcome{UpdateStatus::unreachable, version, why};
    if (reachable_) log(why + "; keeping " + current_label());
    reachable_ = false;
    return outcome;
  };
  auto check = [&]() -> UpdateOutcome {
    const std::string service = "customization service " + options_.client.url;
    std::optional<json> latest;
    int version = 0;
    try {
      latest = client_->latest_artifact(options_.device);
      if (latest) version = json_field<int>(*latest, "version", service + " latest artifact");
    } catch (const std::exception& e) {
      return unreachable(0, service + " unreachable: " + e.what());
    }
    if (!reachable_) log(service + " answers again");
    reachable_ = true;
    if (!latest) {
      return {UpdateStatus::none, 0, "no artifact for device '" + options_.device + "' yet"};
    }
    if (version <= current_.load()) {
      return {UpdateStatus::none, version, version_label(version) + " is the latest"};
    }
    if (version <= rejected_.load()) {
      return {UpdateStatus::none, version,
              version_label(version) + " was rejected; keeping " + current_label()};
    }

    const fs::path path = options_.dir / (version_label(version) + ".pt");
    json metadata;
    try {
      fs::create_directories(options_.dir);
      metadata = client_->download_artifact(options_.device, version, path);
    } catch (const cloud::RequestError& e) {
      // Cut off: the version may be fine, so it is fetched again at the next check.
      if (e.no_answer()) {
        return unreachable(version, "model " + version_label(version) + " not fetched: " +
                                        e.what());
      }
      return reject(version, e.what());
    } catch (const std::exception& e) {
      return reject(version, e.what());
    }

    EdgeModel model;
    try {
      model = load_edge_model(path.string(), /*require_calibration=*/true);  // sound, too
    } catch (const std::exception& e) {
      return reject(version, e.what());
    }
    const std::string unfit = incompatibility(model, options_);
    if (!unfit.empty()) return reject(version, "incompatible: " + unfit);
    model.version = std::to_string(version);
    const std::string arch = model.encoder->arch();
    const size_t classes = model.pool.size();
    try {
      install_(std::move(model), metadata);
    } catch (const std::exception& e) {
      return reject(version, std::string("install failed: ") + e.what());
    }
    const std::string previous = current_label();
    current_.store(version);
    UpdateOutcome outcome{UpdateStatus::installed, version,
                          "model " + version_label(version) + " installed (" + arch + ", " +
                              std::to_string(classes) + " classes, " + path.string() +
                              "); was " + previous};
    log(outcome.message);
    return outcome;
  };
  UpdateOutcome outcome = check();
  std::lock_guard<std::mutex> lock(outcome_mutex_);
  last_outcome_ = outcome;
  return outcome;
}

void ModelUpdater::start() {
  std::lock_guard<std::mutex> lock(thread_mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    const auto period = std::chrono::duration<double>(options_.poll_s);
    std::unique_lock<std::mutex> lock(thread_mutex_);
    while (!stopping_) {
      lock.unlock();
      try {
        check_once();
      } catch (const std::exception& e) {
        log(std::string("model update check failed: ") + e.what());
      }
      lock.lock();
      wake_.wait_for(lock, period, [this] { return stopping_; });
    }
  });
}

void ModelUpdater::stop() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(thread_mutex_);
    stopping_ = true;
    thread = std::move(thread_);
  }
  wake_.notify_all();
  if (thread.joinable()) thread.join();
}

}  // namespace edgefm::edge
