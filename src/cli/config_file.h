#pragma once
// `--config FILE` for the long-running commands (`serve`, `edge`): a TOML file whose top-level
// keys are the command's option names without the dashes, e.g.
//
//   server = "http://cloud.example:8000"
//   l-app-ms = 20
//   require-cloud = true
//   split = ["default", "even"]      # a repeatable option: one value per element
//
// The file's values are inserted before the command line's own options, and an option given
// on the command line replaces the file's value (the file is read with toml++). A key that is
// not an option of the command, a nested table, or a file that is not TOML is a usage error
// naming the file, the line and what was expected.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace edgefm::cli {

// The commands that take --config.
bool takes_config(const std::string& command);
// Adds the --config option to a command (for --help; the file is read by expand_config).
void add_config_option(CLI::App& command);
// `args` (argv without the program name) with the options of the --config file of its
// command spliced in after the command's name; unchanged when no --config is given.
std::vector<std::string> expand_config(CLI::App& app, const std::vector<std::string>& args);

}  // namespace edgefm::cli
