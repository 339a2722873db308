#pragma once
// The one JSON reader/writer of the project (nlohmann::json underneath).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

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

// An integer of type T from a JSON number: an integer in T's range, or a floating-point
// number with an integral value in that range (3.0, as some writers put it). Anything else
// throws Error "<what>: expected an integer in [min, max], got <value>" (a plain
// get<int>() truncates 3.5 and has undefined behaviour for 1e300).
template <typename T>
T json_integer(const json& value, const std::string& what) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  constexpr auto low = std::numeric_limits<T>::min();
  constexpr auto high = std::numeric_limits<T>::max();
  bool fits = false;
  if (value.is_number_unsigned()) {
    fits = value.get<uint64_t>() <= static_cast<uint64_t>(high);
  } else if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    fits = v >= 0 ? static_cast<uint64_t>(v) <= static_cast<uint64_t>(high)
                  : std::is_signed_v<T> && v >= static_cast<int64_t>(low);
  } else if (value.is_number_float()) {
    // Doubles at or beyond 2^63 / 2^64 are out of range for every T; below, the bounds are
    // exact enough: the casts only happen within (low - 1, high + 1).
    const double v = value.get<double>();
    fits = v == std::floor(v) && v >= static_cast<double>(low) && v < 2.0 * (high / 2 + 1);
  }
  if (!fits) {
    throw Error(what + ": expected an integer in [" + std::to_string(low) + ", " +
                std::to_string(high) + "], got " + value.dump(-1, ' ', false,
                                                               json::error_handler_t::replace));
  }
  return value.is_number_float() ? static_cast<T>(value.get<double>()) : value.get<T>();
}

template <typename T>
struct is_json_integer_vector : std::false_type {};
template <typename T>
struct is_json_integer_vector<std::vector<T>>
    : std::bool_constant<std::is_integral_v<T> && !std::is_same_v<T, bool>> {};

// Required typed field with a clear error: "<context>: field 'name' ...". Integers (and
// vectors of them) are checked as json_integer does.
template <typename T>
T json_field(const json& object, const std::string& name, const std::string& context) {
  if (!object.is_object() || !object.contains(name)) {
    throw Error(context + ": missing field '" + name + "'");
  }
  const json& value = object.at(name);
  const std::string what = context + ": field '" + name + "'";
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (value.is_number()) return json_integer<T>(value, what);
  } else if constexpr (is_json_integer_vector<T>::value) {
    if (value.is_array()) {
      T out;
      out.reserve(value.size());
      for (const json& element : value) {
        if (!element.is_number()) break;
        out.push_back(json_integer<typename T::value_type>(element, what + " element"));
      }
      if (out.size() == value.size()) return out;
    }
  }
  try {
    return value.get<T>();
  } catch (const json::exception& e) {
    throw Error(what + " has the wrong type (" + value.type_name() + ")");
  }
}

}  // namespace edgefm
