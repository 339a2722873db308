// edgefm models: the edge model pool with its measured cost on this machine.
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/provenance.h"
#include "common/table.h"
#include "models/edge.h"

namespace edgefm::cli {
namespace {

struct ModelsOptions {
  FmOptions fm;
  int repetitions = 200;
  int dim = 128;
  std::string spec_path;
  std::string json_path;
};

void run_models(const ModelsOptions& o) {
  models::configure_torch_threads();
  if (o.repetitions < 1) fail_expected("--repetitions", "at least 1", std::to_string(o.repetitions));
  // The FM (when there is one) fixes the spec; else --spec, else grey 28 x 28 images.
  std::optional<models::FoundationModel> fm;
  if (!o.fm.torchscript.empty() || std::filesystem::exists(o.fm.path)) fm = o.fm.load();
  const data::SampleSpec spec =
      load_spec_file(o.spec_path, fm ? fm->spec() : data::default_image_spec());
  if (fm) data::check_same_spec(fm->spec(), "the FM", spec, "--spec");
  const auto frontend = models::measure_frontend_latency(spec, o.repetitions);
  std::printf("samples: %s; front end (raw sample -> tensor) %.3f ms median\n",
              spec.describe().c_str(), frontend.median_ms);
  Table table({"model", "params", "MACs", "b1 median ms", "b1 p99 ms", "b1 + front end ms",
               "b64 ms", "samples/s (b64)", "about"});
  json rows = json::array();
  auto add = [&](const models::ImageEncoder& encoder, const std::string& about) {
    auto b1 = models::measure_latency(encoder, 1, o.repetitions);
    auto b64 = models::measure_latency(encoder, 64, std::max(5, o.repetitions / 20), 3);
    table.add_row({encoder.arch(), std::to_string(encoder.parameter_count()),
                   std::to_string(encoder.multiply_adds()), fmt_num(b1.median_ms, 3),
                   fmt_num(b1.p99_ms, 3), fmt_num(b1.median_ms + frontend.median_ms, 3),
                   fmt_num(b64.median_ms, 2), fmt_num(64000.0 / b64.median_ms, 0), about});
    rows.push_back({{"arch", encoder.arch()},
                    {"params", encoder.parameter_count()},
                    {"multiply_adds", encoder.multiply_adds()},
                    {"latency_ms_b1", b1.median_ms},
                    {"latency_ms_b1_p99", b1.p99_ms},
                    {"latency_ms_b1_with_frontend", b1.median_ms + frontend.median_ms},
                    {"latency_ms_b64", b64.median_ms},
                    {"description", about}});
  };
  for (const auto& arch : models::edge_architectures()) {
    add(*models::make_edge_model(arch.name, spec, o.dim), arch.description);
  }
  if (fm) add(*fm->image, "the FM's encoder (" + fm->version + ")");
  table.print(std::cout);
  if (!o.json_path.empty()) {
    write_json_file(o.json_path, {{"spec", data::to_json(spec)},
                                  {"frontend_ms", frontend.median_ms},
                                  {"models", rows},
                                  {"provenance", provenance()}});
  }
}

}  // namespace

void add_models_command(CLI::App& app) {
  auto o = std::make_shared<ModelsOptions>();
  auto* c = app.add_subcommand(
      "models", "List the edge model pool (and the FM when its file exists) with parameters,\n"
                "multiply-adds and batch-1 / batch-64 forward latency measured on this machine");
  add_fm_options(*c, o->fm);
  c->add_option("--repetitions", o->repetitions, "Timed batch-1 forwards per model")->capture_default_str()
      ->check(positive_number());
  c->add_option("--dim", o->dim, "Embedding dimension of the edge models")->capture_default_str()
      ->check(positive_number());
  c->add_option("--spec", o->spec_path,
                 "Sample spec JSON, or a data set description with one (default: the FM's, else "
                 "grey 28x28 images)");
  c->add_option("--json", o->json_path, "Write the table as JSON");
  c->callback([o] { run_models(*o); });
}

}  // namespace edgefm::cli
