// edgefm classes: add or remove classes of a running edge (runtime classes). The
// change goes to the class overlay in the edge's state folder (<state>/classes.json, see
// edge/classes.h); an edge started with the same --state picks it up from its next sample.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cloud/client.h"
#include "common/error.h"
#include "common/table.h"
#include "edge/classes.h"
#include "models/student.h"

namespace edgefm::cli {
namespace {

struct ClassesCommandOptions {
  std::string name;
  std::vector<std::string> prompts;
  std::string state;
  std::string server = "http://127.0.0.1:8000";
  std::string token;
  std::string student;
};

std::optional<models::TextPool> student_pool(const ClassesCommandOptions& o) {
  if (o.student.empty()) return std::nullopt;
  return models::load_student(o.student).pool;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : "; ") + item;
  return out;
}

void run_add(const ClassesCommandOptions& o) {
  const auto path = edge::class_overlay_path(o.state);
  const auto pool = student_pool(o);
  cloud::ClientOptions client_options = cloud::client_default_options();
  client_options.url = o.server;
  client_options.token = o.token;
  cloud::OipClient client(client_options);
  // The vector first: a class the FM does not know leaves the overlay as it was.
  edge::AddedClass added = edge::fetch_class(client, o.name, o.prompts);
  const size_t dim = added.vector.size();
  bool replaced = false, was_removed = false;
  edge::update_class_overlay(path, [&](edge::ClassOverlay& overlay) {
    replaced = overlay.find_added(o.name) != nullptr;
    was_removed = overlay.is_removed(o.name);
    overlay.add(std::move(added));
    if (pool) edge::apply_class_overlay(*pool, overlay);  // throws (saving nothing) if unfit
  });
  std::printf("%s class '%s' (%s, dimension %zu)%s in %s; a running edge uses it from its next "
              "sample\n",
              replaced ? "replaced" : "added", o.name.c_str(),
              o.prompts.empty() ? "embedded by its name"
                                : (std::to_string(o.prompts.size()) + " prompt(s) averaged").c_str(),
              dim, was_removed ? " (no longer removed)" : "", path.c_str());
}

void run_remove(const ClassesCommandOptions& o) {
  const auto path = edge::class_overlay_path(o.state);
  const auto pool = student_pool(o);
  bool was_added = false, already = false;
  edge::update_class_overlay(path, [&](edge::ClassOverlay& overlay) {
    was_added = overlay.find_added(o.name) != nullptr;
    already = overlay.is_removed(o.name);
    overlay.remove(o.name);
    if (pool) {
      if (!pool->index_of(o.name) && !was_added) {
        throw Error("class '" + o.name + "' is neither in the student's pool (" + o.student +
                    ") nor added; nothing to remove");
      }
      edge::apply_class_overlay(*pool, overlay);  // throws (saving nothing) if < 2 are left
    }
  });
  if (already) {
    std::printf("class '%s' was already removed in %s\n", o.name.c_str(), path.c_str());
  } else {
    std::printf("removed class '%s'%s in %s; a running edge stops predicting it from its next "
                "sample\n",
                o.name.c_str(), was_added ? " (dropped the added class)" : "", path.c_str());
  }
}

void run_list(const ClassesCommandOptions& o) {
  const auto path = edge::class_overlay_path(o.state);
  const edge::ClassOverlay overlay = edge::load_class_overlay(path);
  std::printf("class overlay %s: %zu added, %zu removed\n", path.c_str(), overlay.added.size(),
              overlay.removed.size());
  if (!overlay.empty()) {
    Table table({"class", "change", "dimension", "prompts"});
    for (const auto& c : overlay.added) {
      table.add_row({c.name, "added", std::to_string(c.vector.size()),
                     c.prompts.empty() ? "(its name)" : joined(c.prompts)});
    }
    for (const auto& name : overlay.removed) table.add_row({name, "removed", "", ""});
    table.print(std::cout);
  }
  const auto pool = student_pool(o);
  if (!pool) return;
  const models::TextPool effective = edge::apply_class_overlay(*pool, overlay);
  std::printf("\neffective pool: %zu classes (student %s: %zu, dimension %d)\n", effective.size(),
              o.student.c_str(), pool->size(), effective.dim());
  Table table({"#", "class", "from"});
  for (size_t i = 0; i < effective.size(); ++i) {
    const std::string& name = effective.name(i);
    const bool added = overlay.find_added(name) != nullptr;
    const bool in_student = pool->index_of(name).has_value();
    table.add_row({std::to_string(i), name,
                   added ? (in_student ? "overlay (replaces the student's)" : "overlay")
                         : "student"});
  }
  table.print(std::cout);
  for (const auto& name : overlay.removed) {
    if (!pool->index_of(name)) {
      std::printf("note: removed class '%s' is not in the student's pool\n", name.c_str());
    }
  }
  std::cout.flush();
}

void add_state_option(CLI::App& command, ClassesCommandOptions& o) {
  command
      .add_option("--state", o.state,
                  "the edge's state folder; the overlay is <state>/classes.json (created on "
                  "the first change)")
      ->required();
}

void add_student_option(CLI::App& command, ClassesCommandOptions& o, const std::string& what) {
  command.add_option("--student", o.student, what)->check(CLI::ExistingFile);
}

}  // namespace

void add_classes_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "classes",
      "Add or remove classes of an edge at run time. The change is written to the class\n"
      "overlay <state>/classes.json; an `edgefm edge --state DIR` running with the same folder\n"
      "reloads it and uses it from its next sample. Added classes carry the FM's text\n"
      "embedding, fetched once from the cloud's text model. Format: docs/edge.md.");
  command->require_subcommand(1);

  auto add_options = std::make_shared<ClassesCommandOptions>();
  CLI::App* add = command->add_subcommand(
      "add",
      "Fetch the text embedding of a class from the cloud (the average of its prompts, or of\n"
      "its name alone) and add it to the overlay, replacing an added class of that name and\n"
      "undoing an earlier removal. A class the FM does not know is refused and the overlay\n"
      "is left unchanged.");
  add->add_option("name", add_options->name, "the class name the edge will predict")
      ->required();
  add->add_option("--prompt", add_options->prompts,
                  "a text for the FM's text model (repeatable; the embeddings are averaged); "
                  "default: the name itself")
      ->allow_extra_args(false);
  add_state_option(*add, *add_options);
  add->add_option("--server", add_options->server, "the cloud service's URL")
      ->capture_default_str();
  add->add_option("--token", add_options->token, "bearer token of the cloud service");
  add_student_option(*add, *add_options,
                     "check that the new overlay fits this student's pool (dimension) before "
                     "saving it");
  add->callback([add_options] { run_add(*add_options); });

  auto remove_options = std::make_shared<ClassesCommandOptions>();
  CLI::App* remove = command->add_subcommand(
      "remove",
      "Remove a class: an added one is dropped, and the name is listed as removed so the\n"
      "student's own class of that name is no longer predicted. No cloud needed.");
  remove->add_option("name", remove_options->name, "the class to remove")->required();
  add_state_option(*remove, *remove_options);
  add_student_option(*remove, *remove_options,
                     "refuse a name the student's pool does not hold, and a removal that leaves "
                     "fewer than 2 classes");
  remove->callback([remove_options] { run_remove(*remove_options); });

  auto list_options = std::make_shared<ClassesCommandOptions>();
  CLI::App* list = command->add_subcommand(
      "list", "Print the overlay and, with --student, the effective pool the edge uses.");
  add_state_option(*list, *list_options);
  add_student_option(*list, *list_options,
                     "also print the effective pool: this student's pool with the overlay "
                     "applied");
  list->callback([list_options] { run_list(*list_options); });
}

}  // namespace edgefm::cli
