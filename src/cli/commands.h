#pragma once
// Each subcommand of `edgefm` registers itself on the app through one of these functions;
// its implementation lives in src/cli/<name>_command.cpp and calls into the parts.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace edgefm::cli {

// The whole program: runs `edgefm <args...>` and returns its exit status (0; 1 for errors;
// 2 for usage errors, reported as one line on stderr).
int run_program(const std::vector<std::string>& args);

// Every subcommand below, registered on `app`, with its numeric options checked (cli/usage.h).
void add_commands(CLI::App& app);

void add_fm_command(CLI::App& app);         // fm train | fm eval
void add_data_command(CLI::App& app);       // data info | data export
void add_models_command(CLI::App& app);     // models
void add_customize_command(CLI::App& app);  // customize
void add_eval_command(CLI::App& app);       // eval
void add_link_command(CLI::App& app);       // link (trace-driven link emulator)
void add_serve_command(CLI::App& app);      // serve (cloud service, Open Inference Protocol)
void add_profile_command(CLI::App& app);    // profile (edge architectures' cost on this device)
void add_edge_command(CLI::App& app);       // edge (edge runtime on a replayed stream)
void add_experiment_command(CLI::App& app); // experiment (serve + link + edge per trace, policy)
void add_classes_command(CLI::App& app);    // classes add | remove | list (runtime classes)
void add_scenario_command(CLI::App& app);   // scenario (open-set scenario, the whole loop live)
void add_devices_command(CLI::App& app);    // devices add | list | revoke (device registry)
void add_fleet_command(CLI::App& app);      // fleet (N simulated devices against one serve)

}  // namespace edgefm::cli
