// edgefm devices: the customization service's device registry (cloud/device_registry.h).
// Works on the registry file directly; a running `serve --devices FILE` picks up each change
// from its next request.
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cloud/device_registry.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/provenance.h"
#include "common/table.h"

namespace edgefm::cli {
namespace {

struct DevicesCommandOptions {
  std::string name;
  std::string file;
  std::string json_path;
};

std::string utc_time(double unix_seconds) {
  if (unix_seconds <= 0) return "never";
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

void run_add(const DevicesCommandOptions& o) {
  const std::string token = cloud::add_registry_device(o.file, o.name);
  // The token goes to stdout alone, so scripts can capture it; it is not shown again.
  std::fprintf(stderr,
               "added device '%s' to %s; its token follows (shown once: only its SHA-256 is "
               "kept)\n",
               o.name.c_str(), o.file.c_str());
  std::printf("%s\n", token.c_str());
}

void run_revoke(const DevicesCommandOptions& o) {
  cloud::revoke_registry_device(o.file, o.name);
  std::printf("revoked device '%s' in %s; its samples and artifacts stay on the service\n",
              o.name.c_str(), o.file.c_str());
}

void run_list(const DevicesCommandOptions& o) {
  const auto devices = cloud::read_device_registry(o.file);
  if (!o.json_path.empty()) {
    json list = json::array();
    for (const auto& d : devices) {
      list.push_back(cloud::device_to_json(d));
    }
    write_json_file(o.json_path, {{"devices", list}, {"provenance", provenance()}});
  }
  std::printf("%zu device(s) in %s\n", devices.size(), o.file.c_str());
  if (devices.empty()) return;
  Table table({"device", "state", "samples", "model version", "last contact (UTC)", "added (UTC)"});
  for (const auto& d : devices) {
    table.add_row({d.name, d.revoked() ? "revoked" : "active", std::to_string(d.samples),
                   d.model_version > 0 ? std::to_string(d.model_version) : "none",
                   utc_time(d.last_contact_unix), utc_time(d.added_unix)});
  }
  table.print(std::cout);
  std::cout.flush();
}

void add_file_option(CLI::App& command, DevicesCommandOptions& o) {
  command
      .add_option("--devices", o.file,
                  "the registry file, as given to `serve --devices` (created by the first add)")
      ->required();
}

}  // namespace

void add_devices_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "devices",
      "Manage the devices of the customization service: each has a token of its own that\n"
      "reaches only its samples, jobs and artifacts. Works on the registry file that\n"
      "`serve --devices FILE` reads; a running service applies each change from its next\n"
      "request. docs/customization.md.");
  command->require_subcommand(1);

  auto add_options = std::make_shared<DevicesCommandOptions>();
  CLI::App* add = command->add_subcommand(
      "add",
      "Register a device (or give a revoked one a new token) and print its new token once on\n"
      "stdout. Only the token's SHA-256 is stored: keep the token, it cannot be shown again.");
  add->add_option("name", add_options->name,
                  "the device's name, as the edge gives it (--device-name): 1-64 of A-Z a-z "
                  "0-9 . _ -")
      ->required();
  add_file_option(*add, *add_options);
  add->callback([add_options] { run_add(*add_options); });

  auto list_options = std::make_shared<DevicesCommandOptions>();
  CLI::App* list = command->add_subcommand(
      "list",
      "Print every device with its state, samples stored, latest model version and last\n"
      "contact, as the service last wrote them (docs/customization.md).");
  add_file_option(*list, *list_options);
  list->add_option("--json", list_options->json_path,
                   "also write the list to this JSON file ({\"devices\": [...]})");
  list->callback([list_options] { run_list(*list_options); });

  auto revoke_options = std::make_shared<DevicesCommandOptions>();
  CLI::App* revoke = command->add_subcommand(
      "revoke",
      "Revoke a device's token: requests with it are answered 401 from then on. Its data\n"
      "stay; `devices add` gives it a new token.");
  revoke->add_option("name", revoke_options->name, "the device to revoke")->required();
  add_file_option(*revoke, *revoke_options);
  revoke->callback([revoke_options] { run_revoke(*revoke_options); });
}

}  // namespace edgefm::cli
