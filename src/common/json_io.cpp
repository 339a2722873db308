#include "common/json_io.h"

#include <fstream>
#include <sstream>
#include <unistd.h>

#include "common/error.h"

namespace edgefm {

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
  write_text_file(path, value.dump(2) + "\n");
}

}  // namespace edgefm
