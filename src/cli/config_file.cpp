#include "cli/config_file.h"

#include <algorithm>
#include <cstdio>

#include <toml++/toml.h>

#include "cli/usage.h"

namespace edgefm::cli {
namespace {

const std::vector<std::string> kConfigCommands = {"serve", "edge"};

bool given(const std::vector<std::string>& args, size_t from, const std::string& option) {
  for (size_t i = from; i < args.size(); ++i) {
    if (args[i] == option || args[i].rfind(option + "=", 0) == 0) return true;
  }
  return false;
}

// A scalar TOML value as the command line would spell it; empty optional for other nodes.
std::optional<std::string> scalar_text(const toml::node& node) {
  if (auto s = node.value<std::string>(); s && node.is_string()) return *s;
  if (node.is_integer()) return std::to_string(*node.value<int64_t>());
  if (node.is_floating_point()) {
    char text[64];
    std::snprintf(text, sizeof text, "%.17g", *node.value<double>());
    return std::string(text);
  }
  if (node.is_boolean()) return std::string(*node.value<bool>() ? "true" : "false");
  return std::nullopt;
}

std::string line_of(const toml::node& node) {
  return std::to_string(node.source().begin.line);
}

}  // namespace

bool takes_config(const std::string& command) {
  return std::find(kConfigCommands.begin(), kConfigCommands.end(), command) != kConfigCommands.end();
}

void add_config_option(CLI::App& command) {
  static std::string ignored;  // the file is read before parsing, by expand_config
  command.add_option("--config", ignored,
                     "read options from this TOML file: top-level keys named like the options "
                     "(l-app-ms = 20, require-cloud = true); options on the command line win")
      ->check(CLI::ExistingFile);
}

std::vector<std::string> expand_config(CLI::App& app, const std::vector<std::string>& args) {
  // The command: the first argument that is not an option.
  size_t command_at = 0;
  while (command_at < args.size() && args[command_at].rfind("-", 0) == 0) ++command_at;
  if (command_at == args.size() || !takes_config(args[command_at])) return args;
  std::string path;
  for (size_t i = command_at + 1; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) path = args[i + 1];
    if (args[i].rfind("--config=", 0) == 0) path = args[i].substr(9);
  }
  if (path.empty()) return args;
  const std::string& name = args[command_at];
  CLI::App* command = app.get_subcommand(name);

  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    if (where.line == 0) throw UsageError("--config " + path + ": cannot read the file");
    throw UsageError("--config " + path + ":" + std::to_string(where.line) + ":" +
                     std::to_string(where.column) + ": expected TOML (key = value lines): " +
                     std::string(e.description()));
  }
  std::vector<std::string> option_names;
  for (const CLI::Option* o : command->get_options()) {
    for (const auto& long_name : o->get_lnames()) option_names.push_back(long_name);
  }
  std::vector<std::string> inserted;
  for (auto&& [key_view, node] : table) {
    const std::string key(key_view.str());
    const std::string where = "--config " + path + ":" + line_of(node) + ": ";
    const CLI::Option* option = key == "config" ? nullptr : command->get_option_no_throw("--" + key);
    if (option == nullptr) {
      const std::string near = nearest_name(key, option_names);
      throw UsageError(where + "'" + key + "' is not an option of `edgefm " + name + "`" +
                       (near.empty() ? "" : "; did you mean '" + near + "'?"));
    }
    if (given(args, command_at + 1, "--" + key)) continue;  // the command line wins
    const bool flag = option->get_expected_min() == 0;
    auto add = [&](const toml::node& value) {
      const std::optional<std::string> text = scalar_text(value);
      if (!text) {
        throw UsageError(where + "'" + key + "': expected a string, number or boolean, got a " +
                         std::string(toml::impl::node_type_friendly_names[static_cast<int>(value.type())]));
      }
      if (flag) {
        if (!value.is_boolean()) {
          throw UsageError(where + "'" + key + "' is a flag: expected true or false, got " + *text);
        }
        if (*value.value<bool>()) inserted.push_back("--" + key);
        return;
      }
      inserted.push_back("--" + key);
      inserted.push_back(*text);
    };
    if (const toml::array* values = node.as_array()) {
      for (const toml::node& value : *values) add(value);
    } else {
      add(node);
    }
  }
  std::vector<std::string> out(args.begin(), args.begin() + static_cast<ptrdiff_t>(command_at) + 1);
  out.insert(out.end(), inserted.begin(), inserted.end());
  out.insert(out.end(), args.begin() + static_cast<ptrdiff_t>(command_at) + 1, args.end());
  return out;
}

}  // namespace edgefm::cli
