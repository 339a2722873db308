#include "cloud/device_registry.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "cloud/customization.h"
#include "common/checksum.h"
#include "common/error.h"
#include "common/json_io.h"

namespace edgefm::cloud {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "edgefm-device-registry";
constexpr int kFormatVersion = 1;

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// An exclusive lock on `<file>.lock` for one read-modify-write of the registry.
class FileLock {
 public:
  explicit FileLock(const fs::path& file) {
    fs::path lock = file;
    lock += ".lock";
    if (lock.has_parent_path()) fs::create_directories(lock.parent_path());
    fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      throw Error("device registry: cannot open '" + lock.string() + "': " + std::strerror(errno));
    }
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      ::close(fd_);
      throw Error("device registry: cannot lock '" + lock.string() + "': " + std::strerror(errno));
    }
  }
  ~FileLock() { ::close(fd_); }  // closing releases the lock
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// Identifies one version of the file: every write renames a new file into place.
std::string file_stamp(const fs::path& file) {
  struct stat st{};
  if (::stat(file.c_str(), &st) != 0) return "missing";
  return std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

DeviceRecord record_from_json(const json& j, const fs::path& file) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() ||
      !j.contains("token_sha256") || !j["token_sha256"].is_string()) {
    fail_expected("device registry '" + file.string() + "' entry",
                  "an object with 'name' and 'token_sha256'", j.dump().substr(0, 80));
  }
  DeviceRecord r;
  r.name = j["name"];
  r.token_sha256 = j["token_sha256"];
  r.added_unix = j.value("added_unix", 0.0);
  r.revoked_unix = j.value("revoked_unix", 0.0);
  r.samples = j.value("samples", int64_t{0});
  r.model_version = j.value("model_version", 0);
  r.last_contact_unix = j.value("last_contact_unix", 0.0);
  return r;
}

json record_to_json(const DeviceRecord& r) {
  return {{"name", r.name},
          {"token_sha256", r.token_sha256},
          {"added_unix", r.added_unix},
          {"revoked_unix", r.revoked_unix},
          {"samples", r.samples},
          {"model_version", r.model_version},
          {"last_contact_unix", r.last_contact_unix}};
}

std::vector<DeviceRecord> parse_registry(const fs::path& file) {
  if (!fs::exists(file)) return {};
  const json j = read_json_file(file);
  if (!j.is_object() || j.value("format", "") != kFormat) {
    fail_expected("device registry '" + file.string() + "'",
                  std::string("a JSON object with \"format\": \"") + kFormat + "\"",
                  "something else");
  }
  if (j.value("version", 0) != kFormatVersion) {
    fail_expected("device registry '" + file.string() + "' version",
                  std::to_string(kFormatVersion), j.value("version", json()).dump());
  }
  std::vector<DeviceRecord> out;
  for (const auto& entry : j.value("devices", json::array())) {
    out.push_back(record_from_json(entry, file));
  }
  return out;
}

// Written through a temporary file and a rename; the token hashes are secrets of a kind, so
// the file is readable by its owner only.
void write_registry(const fs::path& file, const std::vector<DeviceRecord>& records) {
  json devices = json::array();
  for (const auto& r : records) devices.push_back(record_to_json(r));
  const std::string text =
      dump_json({{"format", kFormat}, {"version", kFormatVersion}, {"devices", devices}}, 2) + "\n";
  fs::path tmp = file;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw Error("device registry: cannot create '" + tmp.string() + "': " + std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      throw Error("device registry: cannot write '" + tmp.string() + "': " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  fs::rename(tmp, file);
}

DeviceRecord* find_record(std::vector<DeviceRecord>& records, const std::string& name) {
  for (auto& r : records) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

}  // namespace

json device_to_json(const DeviceRecord& d) {
  return {{"device", d.name},
          {"revoked", d.revoked()},
          {"added_unix", d.added_unix},
          {"revoked_unix", d.revoked_unix},
          {"samples", d.samples},
          {"model_version", d.model_version},
          {"last_contact_unix", d.last_contact_unix}};
}

std::string new_device_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw Error("device token: OpenSSL's generator failed");
  static const char* digits = "0123456789abcdef";
  std::string token = "edgefm-";
  for (unsigned char b : bytes) {
    token += digits[b >> 4];
    token += digits[b & 15];
  }
  return token;
}

std::vector<DeviceRecord> read_device_registry(const fs::path& file) { return parse_registry(file); }

std::string add_registry_device(const fs::path& file, const std::string& name) {
  check_device_name(name);
  FileLock lock(file);
  auto records = parse_registry(file);
  const std::string token = new_device_token();
  DeviceRecord* existing = find_record(records, name);
  if (existing && !existing->revoked()) {
    throw Error("device '" + name + "' is already registered in '" + file.string() +
                "'; revoke it first to give it a new token");
  }
  if (existing) {
    existing->token_sha256 = sha256_hex(token);
    existing->revoked_unix = 0;
    existing->added_unix = now_unix();
  } else {
    DeviceRecord r;
    r.name = name;
    r.token_sha256 = sha256_hex(token);
    r.added_unix = now_unix();
    records.push_back(std::move(r));
  }
  write_registry(file, records);
  return token;
}

void revoke_registry_device(const fs::path& file, const std::string& name) {
  FileLock lock(file);
  auto records = parse_registry(file);
  DeviceRecord* existing = find_record(records, name);
  if (!existing) throw Error("no device '" + name + "' in '" + file.string() + "'");
  if (existing->revoked()) throw Error("device '" + name + "' is already revoked");
  existing->revoked_unix = now_unix();
  write_registry(file, records);
}

// ---- the live view ----------------------------------------------------------------------

DeviceRegistry::DeviceRegistry(fs::path file) : file_(std::move(file)) {
  if (file_.empty()) throw Error("device registry: expected a file, got none");
  {
    FileLock lock(file_);
    if (!fs::exists(file_)) write_registry(file_, {});
  }
  std::lock_guard lock(mutex_);
  reload_if_changed_locked();
}

DeviceRegistry::~DeviceRegistry() {
  try {
    flush();
  } catch (const std::exception&) {
  }
}

void DeviceRegistry::reload_if_changed_locked() {
  const std::string stamp = file_stamp(file_);
  if (stamp == stamp_) return;
  records_ = parse_registry(file_);
  device_of_hash_.clear();
  for (const auto& r : records_) {
    if (!r.revoked()) device_of_hash_[r.token_sha256] = r.name;
  }
  stamp_ = stamp;
}

std::optional<std::string> DeviceRegistry::authenticate(const std::string& token) {
  if (token.empty()) return std::nullopt;
  const std::string hash = sha256_hex(token);
  std::string device;
  bool due = false;
  {
    std::lock_guard lock(mutex_);
    reload_if_changed_locked();
    // The map is keyed by digests of secrets: looking one up reveals nothing about a token.
    auto it = device_of_hash_.find(hash);
    if (it == device_of_hash_.end()) return std::nullopt;
    device = it->second;
    status_[device].last_contact_unix = now_unix();
    dirty_ = true;
    due = flush_due_locked();
  }
  if (due) {
    try {
      write_status();
    } catch (const std::exception&) {
      // A status note must never fail a request; the next one tries again.
    }
  }
  return device;
}

bool DeviceRegistry::contains(const std::string& device) {
  std::lock_guard lock(mutex_);
  reload_if_changed_locked();
  for (const auto& r : records_) {
    if (r.name == device && !r.revoked()) return true;
  }
  return false;
}

std::vector<DeviceRecord> DeviceRegistry::devices() {
  std::lock_guard lock(mutex_);
  reload_if_changed_locked();
  std::vector<DeviceRecord> out = records_;
  for (auto& r : out) {
    auto it = status_.find(r.name);
    if (it == status_.end()) continue;
    if (it->second.samples >= 0) r.samples = it->second.samples;
    if (it->second.model_version >= 0) r.model_version = it->second.model_version;
    if (it->second.last_contact_unix > 0) r.last_contact_unix = it->second.last_contact_unix;
  }
  return out;
}

void DeviceRegistry::note(const std::string& device, const std::function<void(Status&)>& update) {
  bool due = false;
  {
    std::lock_guard lock(mutex_);
    update(status_[device]);
    dirty_ = true;
    due = flush_due_locked();
  }
  if (due) {
    try {
      write_status();
    } catch (const std::exception&) {  // a status write is retried with the next note
    }
  }
}

void DeviceRegistry::note_samples(const std::string& device, int64_t samples) {
  note(device, [samples](Status& s) { s.samples = samples; });
}

void DeviceRegistry::note_model_version(const std::string& device, int version) {
  note(device, [version](Status& s) { s.model_version = version; });
}

void DeviceRegistry::flush() {
  {
    std::lock_guard lock(mutex_);
    if (!dirty_) return;
    last_flush_ = std::chrono::steady_clock::now();
  }
  write_status();
}

bool DeviceRegistry::flush_due_locked() {
  const auto now = std::chrono::steady_clock::now();
  if (!dirty_ || now - last_flush_ < std::chrono::seconds(1)) return false;
  last_flush_ = now;
  return true;
}

// Merges the noted status into the file as it is now (`edgefm devices` may have changed it).
void DeviceRegistry::write_status() {
  std::lock_guard writing(write_mutex_);
  std::map<std::string, Status> status;
  {
    std::lock_guard lock(mutex_);
    status = status_;
    dirty_ = false;
  }
  try {
    FileLock lock(file_);
    auto records = parse_registry(file_);
    bool changed = false;
    for (auto& r : records) {
      auto it = status.find(r.name);
      if (it == status.end()) continue;
      const Status& s = it->second;
      if (s.samples >= 0 && s.samples != r.samples) {
        r.samples = s.samples;
        changed = true;
      }
      if (s.model_version >= 0 && s.model_version != r.model_version) {
        r.model_version = s.model_version;
        changed = true;
      }
      if (s.last_contact_unix > r.last_contact_unix) {
        r.last_contact_unix = s.last_contact_unix;
        changed = true;
      }
    }
    if (changed) write_registry(file_, records);
  } catch (...) {
    std::lock_guard lock(mutex_);
    dirty_ = true;  // try again with the next note
    throw;
  }
}

}  // namespace edgefm::cloud
