#pragma once
// Model updates on the edge: poll the customization service
// (docs/customization.md) for a newer artifact of this device, download it (checksum verified,
// written atomically), load it beside the running model, check that it fits and is sound
// (finite weights and buffers, finite embeddings of a zero sample), and hand it to
// `install` (typically EdgeRuntime::swap_model, which swaps between two samples).
//
// Anything wrong with a new version (checksum mismatch, an HTTP error answer, a file that
// does not load, a model that does not fit or is unsound, an install that throws) rejects
// it: one log line "model v3 rejected: <why>; keeping v2", and that version is not tried
// again; a newer one is.
// A service that cannot be reached is an outcome (`unreachable`, logged once until it answers
// again), never an exception out of the polling thread; a download cut off that way is
// retried at the next poll.
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cloud/client.h"
#include "common/json_io.h"
#include "edge/runtime.h"
#include "models/encoder.h"

namespace edgefm::cloud {
class CustomizationClient;
}

namespace edgefm::edge {

struct UpdaterOptions {
  cloud::ClientOptions client = cloud::client_default_options();  // the service's url, token
  std::string device;             // the device name the artifacts are published for
  std::filesystem::path dir;      // downloads go to dir/v<N>.pt (created if missing)
  double poll_s = 1.0;            // start(): seconds between checks
  // Compatibility with the running edge; unset / 0: not checked.
  std::optional<models::ImageShape> expected_input;  // the stream's image shape
  int expected_dim = 0;           // embedding dimension (e.g. of the runtime-class vectors)
};
UpdaterOptions updater_default_options();

enum class UpdateStatus {
  none,         // no version newer than the current one (or only rejected ones)
  installed,    // a new version was downloaded, loaded and installed
  rejected,     // a new version was refused; the current model keeps serving
  unreachable,  // the service could not be asked (no answer, or an error answer)
};
const char* update_status_name(UpdateStatus status);  // "none", "installed", ...

struct UpdateOutcome {
  UpdateStatus status = UpdateStatus::none;
  int version = 0;      // the version concerned (latest seen; installed or rejected)
  std::string message;  // what happened, one line
};

class ModelUpdater {
 public:
  using Install = std::function<void(EdgeModel model, const json& metadata)>;
  using Log = std::function<void(const std::string& line)>;

  // `current_version`: the version serving now (0: none from the service). `install` gets
  // the loaded model (its `version` set to the artifact's number) and the service's metadata;
  // it may throw to refuse it. `log` gets one line per event (may be empty).
  ModelUpdater(UpdaterOptions options, int current_version, Install install, Log log);
  ~ModelUpdater();  // stop()
  ModelUpdater(const ModelUpdater&) = delete;
  ModelUpdater& operator=(const ModelUpdater&) = delete;

  // One check: ask for the latest version and, when it is new, fetch and install it. Never
  // throws for a failure of the service or of the artifact (see UpdateOutcome).
  UpdateOutcome check_once();

  // Checks every poll_s on a thread of its own until stop(). Idempotent.
  void start();
  void stop();

  int current_version() const { return current_.load(); }
  int rejected_version() const { return rejected_.load(); }  // latest rejected (0: none)
  UpdateOutcome last_outcome() const;

 private:
  UpdateOutcome reject(int version, const std::string& why);
  void log(const std::string& line) const;
  std::string current_label() const;

  UpdaterOptions options_;
  Install install_;
  Log log_;
  std::unique_ptr<cloud::CustomizationClient> client_;
  std::atomic<int> current_;
  std::atomic<int> rejected_{0};
  bool reachable_ = true;  // the last check got an answer (logs unreachable once)

  std::mutex check_mutex_;  // one check at a time
  mutable std::mutex outcome_mutex_;
  UpdateOutcome last_outcome_;

  std::mutex thread_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace edgefm::edge
