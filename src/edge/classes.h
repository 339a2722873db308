#pragma once
// Runtime classes: the classes an operator adds to or removes from the edge
// while it runs, kept as an overlay on the student's text pool in the edge's state folder:
//
//   <state>/classes.json
//   {"format": "edgefm-classes", "version": 1,
//    "added":   [{"name": "Giraffe", "prompts": ["a giraffe"], "vector": [...]}, ...],
//    "removed": ["Bag", ...]}
//
// An added class carries its L2-normalised text embedding, fetched once from the cloud's text
// model (fetch_class), so the edge needs no cloud to apply it. The effective pool is the
// student's pool with the added classes set (added or replaced) and then the removed ones
// taken out (apply_class_overlay). The running edge polls the file (ClassOverlayWatcher) and
// uses a new overlay from the next sample on. Torch-free.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/json_io.h"
#include "models/text_pool.h"

namespace edgefm::cloud {
class OipClient;
}

namespace edgefm::edge {

constexpr const char* kClassOverlayFormat = "edgefm-classes";
constexpr int kClassOverlayVersion = 1;
constexpr const char* kClassOverlayFile = "classes.json";

struct AddedClass {
  std::string name;
  std::vector<std::string> prompts;  // what was embedded; empty: the name alone
  std::vector<float> vector;         // L2-normalised, the FM's text-embedding dimension
};

struct ClassOverlay {
  std::vector<AddedClass> added;     // unique names, in the order they were added
  std::vector<std::string> removed;  // unique names, disjoint from `added`

  bool empty() const { return added.empty() && removed.empty(); }
  const AddedClass* find_added(const std::string& name) const;  // nullptr when not added
  bool is_removed(const std::string& name) const;

  // Adds the class, replacing an added one of the same name; a removed class of that name is
  // no longer removed.
  void add(AddedClass added_class);
  // Drops an added class of that name and lists the name as removed (once).
  void remove(const std::string& name);

  json to_json() const;
  // Throws Error "<context>: ..." on a wrong format field, a wrong type, a missing or empty
  // vector, vectors of different dimensions, a duplicate name or a class both added and
  // removed.
  static ClassOverlay from_json(const json& j, const std::string& context);
};

// <state>/classes.json
std::filesystem::path class_overlay_path(const std::filesystem::path& state_dir);

// A missing file is an empty overlay; a malformed one throws Error naming the file and what
// was expected.
ClassOverlay load_class_overlay(const std::filesystem::path& path);
// Writes the overlay atomically (temporary file + rename), creating the folder.
void save_class_overlay(const std::filesystem::path& path, const ClassOverlay& overlay);
// Load, change, save under an exclusive lock on "<path>.lock", so two commands changing the
// overlay at once do not lose each other's change. Returns the saved overlay; when `change`
// throws, nothing is saved.
ClassOverlay update_class_overlay(const std::filesystem::path& path,
                                  const std::function<void(ClassOverlay&)>& change);

// The pool the edge classifies against: `base` with the added classes set, then the removed
// ones taken out (a removed name not in the pool is ignored). Throws Error when an added
// vector's dimension is not the pool's (naming the class, expected vs got) and when fewer
// than 2 classes would remain.
models::TextPool apply_class_overlay(const models::TextPool& base, const ClassOverlay& overlay);

// Embeds the prompts (the name alone when none is given) with the cloud's text model, and
// averages and L2-normalises them. A class the FM does not know (the server answers 400)
// throws Error "the FM does not know class '<name>': <server message>"; other failures
// throw the client's RequestError.
AddedClass fetch_class(cloud::OipClient& client, const std::string& name,
                       const std::vector<std::string>& prompts);

// Watches the overlay file for the running edge. poll() returns the overlay when the file
// changed since the last poll (modification time, size or identity; the first poll returns
// it when the file exists), nullopt otherwise. A file that disappears reads as an empty
// overlay. A malformed file returns nullopt and sets last_error() (cleared by the next
// poll) once per change of the file, so the caller logs it and keeps its old pool.
class ClassOverlayWatcher {
 public:
  explicit ClassOverlayWatcher(std::filesystem::path path);

  std::optional<ClassOverlay> poll();
  const std::string& last_error() const { return last_error_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  struct Stamp {
    bool exists = false;
    std::filesystem::file_time_type modified{};
    uintmax_t size = 0;
    uint64_t inode = 0;  // an atomic rewrite is a new file
    bool operator==(const Stamp&) const = default;
  };
  Stamp stamp() const;

  std::filesystem::path path_;
  bool polled_ = false;
  Stamp last_;
  std::string last_error_;
};

}  // namespace edgefm::edge
