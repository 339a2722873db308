#include "edge/classes.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <system_error>

#include "cloud/client.h"
#include "common/error.h"

namespace edgefm::edge {

namespace fs = std::filesystem;

const AddedClass* ClassOverlay::find_added(const std::string& name) const {
  for (const auto& c : added) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

bool ClassOverlay::is_removed(const std::string& name) const {
  return std::find(removed.begin(), removed.end(), name) != removed.end();
}

void ClassOverlay::add(AddedClass added_class) {
  if (added_class.name.empty()) fail_expected("class overlay add", "a class name", "an empty name");
  removed.erase(std::remove(removed.begin(), removed.end(), added_class.name), removed.end());
  for (auto& c : added) {
    if (c.name == added_class.name) {
      c = std::move(added_class);
      return;
    }
  }
  added.push_back(std::move(added_class));
}

void ClassOverlay::remove(const std::string& name) {
  if (name.empty()) fail_expected("class overlay remove", "a class name", "an empty name");
  added.erase(std::remove_if(added.begin(), added.end(),
                             [&](const AddedClass& c) { return c.name == name; }),
              added.end());
  if (!is_removed(name)) removed.push_back(name);
}

json ClassOverlay::to_json() const {
  json added_json = json::array();
  for (const auto& c : added) {
    added_json.push_back({{"name", c.name}, {"prompts", c.prompts}, {"vector", c.vector}});
  }
  return {{"format", kClassOverlayFormat},
          {"version", kClassOverlayVersion},
          {"added", std::move(added_json)},
          {"removed", removed}};
}

ClassOverlay ClassOverlay::from_json(const json& j, const std::string& context) {
  if (!j.is_object()) fail_expected(context, "a JSON object", j.type_name());
  const auto format = json_field<std::string>(j, "format", context);
  if (format != kClassOverlayFormat) {
    fail_expected(context + " 'format'", std::string("\"") + kClassOverlayFormat + "\"",
                  "\"" + format + "\"");
  }
  const int version = json_field<int>(j, "version", context);
  if (version != kClassOverlayVersion) {
    fail_expected(context + " 'version'", std::to_string(kClassOverlayVersion),
                  std::to_string(version));
  }
  ClassOverlay overlay;
  const json added = j.contains("added") ? j.at("added") : json::array();
  if (!added.is_array()) fail_expected(context + " 'added'", "an array", added.type_name());
  std::set<std::string> names;
  size_t dim = 0;
  for (size_t i = 0; i < added.size(); ++i) {
    const std::string where = context + " 'added'[" + std::to_string(i) + "]";
    AddedClass c;
    c.name = json_field<std::string>(added[i], "name", where);
    if (c.name.empty()) fail_expected(where + " 'name'", "a class name", "an empty string");
    const std::string named = context + " class '" + c.name + "'";
    if (added[i].contains("prompts")) {
      c.prompts = json_field<std::vector<std::string>>(added[i], "prompts", named);
    }
    c.vector = json_field<std::vector<float>>(added[i], "vector", named);
    if (c.vector.empty()) fail_expected(named + " 'vector'", "a non-empty vector", "[]");
    double norm = 0.0;
    for (float v : c.vector) {
      if (!std::isfinite(v)) fail_expected(named + " 'vector'", "finite numbers", std::to_string(v));
      norm += static_cast<double>(v) * v;
    }
    if (norm == 0.0) fail_expected(named + " 'vector'", "a non-zero vector", "all zeros");
    if (dim == 0) dim = c.vector.size();
    if (c.vector.size() != dim) {
      fail_expected(named + " 'vector'",
                    std::to_string(dim) + " values like the classes before it",
                    std::to_string(c.vector.size()));
    }
    if (!names.insert(c.name).second) {
      fail_expected(where + " 'name'", "each class added once", "'" + c.name + "' twice");
    }
    overlay.added.push_back(std::move(c));
  }
  if (j.contains("removed")) {
    overlay.removed = json_field<std::vector<std::string>>(j, "removed", context);
  }
  std::set<std::string> removed_names;
  for (const auto& name : overlay.removed) {
    if (name.empty()) fail_expected(context + " 'removed'", "class names", "an empty string");
    if (!removed_names.insert(name).second) {
      fail_expected(context + " 'removed'", "each class listed once", "'" + name + "' twice");
    }
    if (names.count(name)) {
      fail_expected(context + " class '" + name + "'", "either added or removed", "both");
    }
  }
  return overlay;
}

fs::path class_overlay_path(const fs::path& state_dir) { return state_dir / kClassOverlayFile; }

ClassOverlay load_class_overlay(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (ec) throw Error("class overlay " + path.string() + ": cannot be read (" + ec.message() + ")");
    return {};
  }
  return ClassOverlay::from_json(read_json_file(path), "class overlay " + path.string());
}

void save_class_overlay(const fs::path& path, const ClassOverlay& overlay) {
  write_json_file(path, overlay.to_json());
}

namespace {

// An exclusive flock held for the object's lifetime.
class FileLock {
 public:
  explicit FileLock(const fs::path& path) {
    fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error("class overlay lock " + path.string() + ": cannot be opened");
    if (::flock(fd_, LOCK_EX) != 0) {
      ::close(fd_);
      throw Error("class overlay lock " + path.string() + ": cannot be locked");
    }
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

ClassOverlay update_class_overlay(const fs::path& path,
                                  const std::function<void(ClassOverlay&)>& change) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  FileLock lock(fs::path(path.string() + ".lock"));
  ClassOverlay overlay = load_class_overlay(path);
  change(overlay);
  save_class_overlay(path, overlay);
  return overlay;
}

models::TextPool apply_class_overlay(const models::TextPool& base, const ClassOverlay& overlay) {
  models::TextPool pool = base;
  for (const auto& c : overlay.added) {
    if (static_cast<int>(c.vector.size()) != pool.dim()) {
      fail_expected("class overlay: class '" + c.name + "'",
                    "a vector of the pool's dimension " + std::to_string(pool.dim()),
                    "dimension " + std::to_string(c.vector.size()));
    }
    pool.set(c.name, c.vector);
  }
  for (const auto& name : overlay.removed) pool.remove(name);
  if (pool.size() < 2) {
    fail_expected("class overlay", "at least 2 classes left in the pool",
                  std::to_string(pool.size()) + " (" + std::to_string(base.size()) +
                      " in the base pool, " + std::to_string(overlay.added.size()) + " added, " +
                      std::to_string(overlay.removed.size()) + " removed)");
  }
  return pool;
}

AddedClass fetch_class(cloud::OipClient& client, const std::string& name,
                       const std::vector<std::string>& prompts) {
  if (name.empty()) fail_expected("class name", "a non-empty name", "an empty name");
  AddedClass c;
  c.name = name;
  c.prompts = prompts;
  const std::vector<std::string> texts = prompts.empty() ? std::vector<std::string>{name} : prompts;
  cloud::TextEmbeddings embeddings;
  try {
    embeddings = client.embed_text(texts);
  } catch (const cloud::RequestError& e) {
    if (e.status() == 400) {
      throw Error("the FM does not know class '" + name + "': " +
                  (e.server_message().empty() ? std::string(e.what()) : e.server_message()));
    }
    throw;
  }
  if (embeddings.count != static_cast<int64_t>(texts.size()) || embeddings.dim <= 0 ||
      embeddings.values.size() != static_cast<size_t>(embeddings.count) * embeddings.dim) {
    fail_expected("text embeddings of class '" + name + "'",
                  std::to_string(texts.size()) + " rows of a positive dimension",
                  std::to_string(embeddings.count) + " x " + std::to_string(embeddings.dim) +
                      " (" + std::to_string(embeddings.values.size()) + " values)");
  }
  const size_t dim = static_cast<size_t>(embeddings.dim);
  std::vector<double> sum(dim, 0.0);
  for (size_t row = 0; row < texts.size(); ++row) {
    for (size_t k = 0; k < dim; ++k) sum[k] += embeddings.values[row * dim + k];
  }
  double norm = 0.0;
  for (double v : sum) norm += v * v;
  norm = std::sqrt(norm);
  if (!(norm > 0.0) || !std::isfinite(norm)) {
    fail_expected("text embedding of class '" + name + "'", "a non-zero finite vector",
                  "norm " + std::to_string(norm));
  }
  c.vector.resize(dim);
  for (size_t k = 0; k < dim; ++k) c.vector[k] = static_cast<float>(sum[k] / norm);
  return c;
}

ClassOverlayWatcher::ClassOverlayWatcher(fs::path path) : path_(std::move(path)) {}

ClassOverlayWatcher::Stamp ClassOverlayWatcher::stamp() const {
  Stamp s;
  struct ::stat st {};
  if (::stat(path_.c_str(), &st) != 0) return s;
  std::error_code ec;
  const auto modified = fs::last_write_time(path_, ec);
  if (ec) return s;
  s.exists = true;
  s.modified = modified;
  s.size = static_cast<uintmax_t>(st.st_size);
  s.inode = static_cast<uint64_t>(st.st_ino);
  return s;
}

std::optional<ClassOverlay> ClassOverlayWatcher::poll() {
  last_error_.clear();
  // The stamp before the read: a change during the read is seen again at the next poll.
  const Stamp now = stamp();
  const bool first = !polled_;
  polled_ = true;
  if (!first && now == last_) return std::nullopt;
  const bool existed = last_.exists;
  last_ = now;
  if (!now.exists) {
    if (first || !existed) return std::nullopt;
    return ClassOverlay{};  // the file was deleted: no overlay any more
  }
  try {
    return load_class_overlay(path_);
  } catch (const std::exception& e) {
    last_error_ = e.what();
    return std::nullopt;
  }
}

}  // namespace edgefm::edge
