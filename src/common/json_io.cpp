#include "common/json_io.h"

#include <fstream>
#include <sstream>
#include <unistd.h>

#include "common/error.h"

namespace edgefm {

json parse_untrusted_json(std::string_view text, int max_depth) {
  // The callback sees each container start with the number of containers already open; it
  // throws before a level beyond the limit is added, so the partial DOM stays shallow.
  struct TooDeep {};
  auto limit = [max_depth](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start ||
         event == json::parse_event_t::array_start) &&
        depth >= max_depth) {
      throw TooDeep{};
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limit);
  } catch (const TooDeep&) {
    throw JsonInputError("JSON nested deeper than " + std::to_string(max_depth) +
                         " levels (the limit)");
  } catch (const json::exception& e) {
    // parse_error for malformed text, out_of_range for numbers like 1e400.
    throw JsonInputError(e.what());
  }
}

std::string dump_json(const json& value, int indent) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open JSON file '" + path.string() + "'");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return json::parse(buffer.str());
  } catch (const json::parse_error& e) {
    throw Error("'" + path.string() + "' is not valid JSON: " + e.what());
  }
}

void write_text_file(const std::filesystem::path& path, const std::string& text) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  auto temporary = path;
  temporary += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary);
    if (!out) throw Error("cannot write '" + temporary.string() + "'");
    out << text;
    if (!out.flush()) throw Error("write to '" + temporary.string() + "' failed");
  }
  std::filesystem::rename(temporary, path);
}

void write_json_file(const std::filesystem::path& path, const json& value) {
  write_text_file(path, dump_json(value, 2) + "\n");
}

}  // namespace edgefm
