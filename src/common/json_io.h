#pragma once
// The one JSON reader/writer of the project (nlohmann::json underneath).
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace edgefm {

using json = nlohmann::json;

// ---- JSON from outside the program (HTTP bodies, uploaded metadata, answers of a server) ----
// nlohmann's parser is iterative, but building the DOM, dump(), copies and comparisons
// recurse once per nesting level: a body nested 100 000 levels deep overflows the stack.
// Everything that parses untrusted JSON goes through parse_untrusted_json, which refuses
// nesting deeper than kMaxJsonDepth while parsing, before the DOM grows that deep.
inline constexpr int kMaxJsonDepth = 64;

// Malformed JSON, a number out of range (1e400) or nesting deeper than the limit.
class JsonInputError : public Error {
 public:
  using Error::Error;
};

// Parses untrusted text; arrays and objects may nest at most `max_depth` levels
// ([[1]] is 2). Throws JsonInputError with the parser's message or "nesting deeper than N
// levels" (never json::exception).
json parse_untrusted_json(std::string_view text, int max_depth = kMaxJsonDepth);

// value.dump() that cannot throw: strings that are not valid UTF-8 (bytes from a URL path or
// a binary tensor) have their bad bytes replaced by U+FFFD.
std::string dump_json(const json& value, int indent = -1);

// Reads and parses a JSON file; throws Error naming the file on I/O or parse failure.
json read_json_file(const std::filesystem::path& path);

// Writes `value` (pretty, 2 spaces; invalid UTF-8 replaced as in dump_json) atomically: to
// a temporary file, then renamed. Creates parent folders.
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
