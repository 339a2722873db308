#include "models/text_pool.h"

#include <cmath>

#include "common/error.h"

namespace edgefm::models {

std::optional<size_t> TextPool::index_of(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return i;
  }
  return std::nullopt;
}

void TextPool::set(const std::string& name, const std::vector<float>& vector) {
  if (name.empty()) throw Error("text pool: a class name must not be empty");
  if (dim_ == 0) dim_ = static_cast<int>(vector.size());
  if (static_cast<int>(vector.size()) != dim_) {
    fail_expected("text pool vector for '" + name + "'", std::to_string(dim_) + " values",
                  std::to_string(vector.size()));
  }
  double norm = 0;
  for (float v : vector) norm += double{v} * v;
  norm = std::sqrt(norm);
  if (!(norm > 0) || !std::isfinite(norm)) {
    throw Error("text pool vector for '" + name + "': expected a non-zero finite vector");
  }
  std::vector<float> normalised(vector.size());
  for (size_t k = 0; k < vector.size(); ++k) normalised[k] = static_cast<float>(vector[k] / norm);
  if (auto index = index_of(name)) {
    std::copy(normalised.begin(), normalised.end(), vectors_.begin() + *index * dim_);
    return;
  }
  names_.push_back(name);
  vectors_.insert(vectors_.end(), normalised.begin(), normalised.end());
}

bool TextPool::remove(const std::string& name) {
  auto index = index_of(name);
  if (!index) return false;
  names_.erase(names_.begin() + static_cast<long>(*index));
  vectors_.erase(vectors_.begin() + static_cast<long>(*index * dim_),
                 vectors_.begin() + static_cast<long>((*index + 1) * dim_));
  return true;
}

TextPool TextPool::subset(const std::vector<std::string>& names) const {
  TextPool out(dim_);
  for (const auto& name : names) {
    auto index = index_of(name);
    if (!index) throw Error("text pool has no class '" + name + "'");
    out.set(name, std::vector<float>(vector(*index), vector(*index) + dim_));
  }
  return out;
}

json TextPool::to_json() const {
  json classes = json::array();
  for (size_t i = 0; i < size(); ++i) {
    classes.push_back({{"name", names_[i]},
                       {"vector", std::vector<float>(vector(i), vector(i) + dim_)}});
  }
  return {{"format", "edgefm-pool"}, {"version", 1}, {"dim", dim_}, {"classes", classes}};
}

TextPool TextPool::from_json(const json& j, const std::string& context) {
  if (!j.is_object()) fail_expected(context, "a JSON object", j.type_name());
  if (!j.contains("format") || j["format"] != "edgefm-pool") {
    fail_expected(context, "\"format\": \"edgefm-pool\"",
                  j.contains("format") ? j["format"].dump() : "no format field");
  }
  int version = json_field<int>(j, "version", context);
  if (version != 1) fail_expected(context, "pool version 1", std::to_string(version));
  int dim = json_field<int>(j, "dim", context);
  if (dim <= 0) fail_expected(context, "a positive dim", std::to_string(dim));
  TextPool pool(dim);
  auto classes = json_field<json>(j, "classes", context);
  if (!classes.is_array()) fail_expected(context, "'classes' to be an array", classes.type_name());
  for (size_t i = 0; i < classes.size(); ++i) {
    auto where = context + " class #" + std::to_string(i);
    pool.set(json_field<std::string>(classes[i], "name", where),
             json_field<std::vector<float>>(classes[i], "vector", where));
  }
  return pool;
}

void TextPool::save(const std::filesystem::path& path) const { write_json_file(path, to_json()); }

TextPool TextPool::load(const std::filesystem::path& path) {
  return from_json(read_json_file(path), "embedding pool '" + path.string() + "'");
}

}  // namespace edgefm::models
