#pragma once
// The one JSON reader/writer of the project (nlohmann::json underneath).
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace edgefm {

using json = nlohmann::json;

// Reads and parses a JSON file; throws Error naming the file on I/O or parse failure.
json read_json_file(const std::filesystem::path& path);

// Writes `value` (pretty, 2 spaces) atomically: to a temporary file, then renamed.
// Creates parent folders.
void write_json_file(const std::filesystem::path& path, const json& value);

// Writes text atomically, creating parent folders.
void write_text_file(const std::filesystem::path& path, const std::string& text);

// Required typed field with a clear error: "<context>: field 'name' ..."
template <typename T>
T json_field(const json& object, const std::string& name, const std::string& context) {
  if (!object.is_object() || !object.contains(name)) {
    throw Error(context + ": missing field '" + name + "'");
  }
  try {
    return object.at(name).get<T>();
  } catch (const json::exception& e) {
    throw Error(context + ": field '" + name + "' has the wrong type (" +
                             object.at(name).type_name() + ")");
  }
}

}  // namespace edgefm
