#pragma once
// The text-embedding pool: one L2-normalised vector per class name. The edge classifies
// against it; adding a class at run time is adding a row. No torch here.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/json_io.h"

namespace edgefm::models {

class TextPool {
 public:
  TextPool() = default;
  explicit TextPool(int dim) : dim_(dim) {}

  int dim() const { return dim_; }
  size_t size() const { return names_.size(); }
  bool empty() const { return names_.empty(); }
  const std::vector<std::string>& names() const { return names_; }
  const std::string& name(size_t i) const { return names_[i]; }
  const float* vector(size_t i) const { return vectors_.data() + i * dim_; }
  const float* data() const { return vectors_.data(); }  // size() x dim(), row-major
  std::optional<size_t> index_of(const std::string& name) const;

  // Adds (or replaces) a class; the vector is L2-normalised on the way in. Throws Error on a
  // dimension mismatch, an empty name or a zero vector.
  void set(const std::string& name, const std::vector<float>& vector);
  // Removes a class; returns false when it was not there.
  bool remove(const std::string& name);
  // The pool restricted to `names`, in that order (throws Error for an unknown name).
  TextPool subset(const std::vector<std::string>& names) const;

  json to_json() const;
  static TextPool from_json(const json& j, const std::string& context);
  // The embedding-pool file: {"format": "edgefm-pool", "version": 1, "dim": D,
  // "classes": [{"name": "...", "vector": [...]}, ...]}. A real FM's pool arrives this way.
  void save(const std::filesystem::path& path) const;
  static TextPool load(const std::filesystem::path& path);

 private:
  int dim_ = 0;
  std::vector<std::string> names_;
  std::vector<float> vectors_;
};

}  // namespace edgefm::models
