#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/usage.h"
#include "common/error.h"
#include "common/provenance.h"

namespace edgefm::cli {
namespace {

// An error's message without the stack trace that torch appends to its own.
std::string without_trace(const char* what) {
  std::string text = what;
  const size_t at = text.find("Exception raised from");
  if (at != std::string::npos) text.erase(at);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

void add_commands(CLI::App& app) {
  app.require_subcommand(1);
  app.set_version_flag("--version", "edgefm " + edgefm_version());
  add_fm_command(app);
  add_data_command(app);
  add_models_command(app);
  add_customize_command(app);
  add_eval_command(app);
  add_link_command(app);
  add_serve_command(app);
  add_profile_command(app);
  add_edge_command(app);
  add_experiment_command(app);
  add_classes_command(app);
  add_scenario_command(app);
  add_devices_command(app);
  add_fleet_command(app);
  check_numeric_options(app);
}

int run_program(const std::vector<std::string>& args) {
  CLI::App app{
      "EdgeFM: a small edge model that answers what it is sure of and asks a cloud foundation\n"
      "model (FM) the rest, with the switching threshold following the network.\n"
      "Run `edgefm <command> --help` for the options of each command.",
      "edgefm"};
  add_commands(app);
  std::vector<std::string> expanded = args;
  try {
    expanded = expand_config(app, args);  // --config FILE: its options before the given ones
    // CLI11 takes the arguments last first.
    std::vector<std::string> reversed(expanded.rbegin(), expanded.rend());
    app.parse(reversed);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s\n", describe_parse_error(app, expanded, e).c_str());
    return kUsageExitCode;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "edgefm: %s\n", without_trace(e.what()).c_str());
    return kUsageExitCode;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgefm: error: %s\n", without_trace(e.what()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace edgefm::cli
