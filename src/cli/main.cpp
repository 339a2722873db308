// edgefm: one program, one subcommand per job. Errors raised anywhere below surface here as
// one line on stderr and exit status 1 (2 for usage errors).
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "common/error.h"
#include "common/provenance.h"
#include "common/threads.h"

int main(int argc, char** argv) {
  edgefm::set_command_line(argc, argv);
  edgefm::pin_openblas_to_one_thread();
  CLI::App app{
      "EdgeFM: a small edge model that answers what it is sure of and asks a cloud foundation\n"
      "model (FM) the rest, with the switching threshold following the network.\n"
      "Run `edgefm <command> --help` for the options of each command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "edgefm " + edgefm::edgefm_version());
  edgefm::cli::add_fm_command(app);
  edgefm::cli::add_data_command(app);
  edgefm::cli::add_models_command(app);
  edgefm::cli::add_customize_command(app);
  edgefm::cli::add_eval_command(app);
  edgefm::cli::add_link_command(app);
  edgefm::cli::add_serve_command(app);
  edgefm::cli::add_profile_command(app);
  edgefm::cli::add_edge_command(app);
  edgefm::cli::add_experiment_command(app);
  edgefm::cli::add_classes_command(app);
  edgefm::cli::add_scenario_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgefm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
