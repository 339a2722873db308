#pragma once
// The device registry of the customization service (docs/customization.md, "Devices and
// tokens"): one JSON file listing every device with the SHA-256 of its bearer token (the
// token itself is shown once, when the device is added, and never stored), when it was added
// or revoked, and what the service last saw of it (samples stored, model version, last
// contact). `edgefm devices` edits the file directly; a running `serve` re-reads it when it
// changes, so a revoked token is refused from its next request on. Every change is a
// read-modify-write under an exclusive lock (`<file>.lock`) ending in an atomic rename, so the
// command line and the service may write at the same time. Torch-free and SQLite-free (the
// GPU machine's build has no SQLite).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>
#include <functional>

#include "common/json_io.h"

namespace edgefm::cloud {

struct DeviceRecord {
  std::string name;
  std::string token_sha256;      // lower-case hex SHA-256 of the token
  double added_unix = 0;
  double revoked_unix = 0;       // 0: active
  // What the service saw; written by `serve` at most once a second, and when it stops.
  int64_t samples = 0;           // samples stored on the service
  int model_version = 0;         // latest published artifact version (0: none)
  double last_contact_unix = 0;  // last request made with the device's token (0: never)

  bool revoked() const { return revoked_unix > 0; }
};

// A device as `devices list --json` and the admin's GET /v2/customization/devices give it
// (no token hash).
json device_to_json(const DeviceRecord& d);

// A new random token: "edgefm-" and 64 hex digits (32 bytes from OpenSSL's generator).
std::string new_device_token();

// ---- the file, for `edgefm devices` ------------------------------------------------------
// Every device of the file, in the order added; empty when the file does not exist. Throws
// Error for a file that is not a registry.
std::vector<DeviceRecord> read_device_registry(const std::filesystem::path& file);
// Adds a device (or gives a revoked one a new token) and returns its token. Creates the file
// when missing. Throws Error for a bad name or a device that is already active.
std::string add_registry_device(const std::filesystem::path& file, const std::string& name);
// Revokes a device's token; its samples and artifacts stay. Throws Error when the device is
// unknown or already revoked.
void revoke_registry_device(const std::filesystem::path& file, const std::string& name);

// ---- the live view, for the service --------------------------------------------------------
// Thread-safe. Status notes are kept in memory and written to the file at most once a
// second (and by flush()).
class DeviceRegistry {
 public:
  // Creates an empty registry file when there is none.
  explicit DeviceRegistry(std::filesystem::path file);
  ~DeviceRegistry();  // flush(), errors ignored
  DeviceRegistry(const DeviceRegistry&) = delete;
  DeviceRegistry& operator=(const DeviceRegistry&) = delete;

  const std::filesystem::path& file() const { return file_; }

  // The active device a token belongs to (and notes the contact); nullopt for an unknown or
  // revoked token. Re-reads the file first when it changed on disk.
  std::optional<std::string> authenticate(const std::string& token);
  bool contains(const std::string& device);  // an active device of that name
  std::vector<DeviceRecord> devices();       // with the status noted so far

  void note_samples(const std::string& device, int64_t samples);
  void note_model_version(const std::string& device, int version);
  // Writes the noted status now (also called by the notes, once a second at most).
  void flush();

 private:
  struct Status {
    int64_t samples = -1;  // -1: not noted
    int model_version = -1;
    double last_contact_unix = 0;
  };
  // Applies `update` to the device's noted status and writes the file when due.
  void note(const std::string& device, const std::function<void(Status&)>& update);
  void reload_if_changed_locked();
  bool flush_due_locked();  // once a second at most, when something was noted
  // Merges the noted status into the file; the file I/O runs outside mutex_ so requests
  // authenticating meanwhile do not wait for it.
  void write_status();

  std::filesystem::path file_;
  std::mutex mutex_;        // everything below
  std::mutex write_mutex_;  // one status write at a time
  std::vector<DeviceRecord> records_;
  std::map<std::string, std::string> device_of_hash_;  // active devices only
  std::string stamp_;                                  // what the file looked like when read
  std::map<std::string, Status> status_;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_flush_{};
};

}  // namespace edgefm::cloud
