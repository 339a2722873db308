// models_bench: forward latency of every edge model and the FM at batch 1 and batched, on
// this machine. Prints a table (mean ± stdev over repetitions, after warm-up) and writes JSON
// with the machine and build recorded beside every row.
//
//   build/bench/models_bench [--fm models/fm.pt] [--reps 300] [--json out/bench/models.json]
#include <sys/utsname.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "common/json_io.h"
#include "common/provenance.h"
#include "common/table.h"
#include "common/threads.h"
#include "models/edge.h"
#include "models/foundation.h"

using namespace edgefm;

int main(int argc, char** argv) {
  set_command_line(argc, argv);
  CLI::App app{"Forward latency of the edge models and the FM (batch 1 and batched)"};
  std::string fm_path = "models/fm.pt";
  std::string json_path;
  int reps = 300;
  int threads = 0;
  std::vector<int> batches = {1, 64};
  app.add_option("--fm", fm_path, "Reference FM file (skipped when absent)")->capture_default_str();
  app.add_option("--reps", reps, "Timed batch-1 repetitions (batched: reps/20)")->capture_default_str();
  app.add_option("--threads", threads, "Torch intra-op threads (0: all cores)")->capture_default_str();
  app.add_option("--batches", batches, "Batch sizes")->capture_default_str();
  app.add_option("--json", json_path, "Write the rows as JSON");
  CLI11_PARSE(app, argc, argv);

  models::configure_torch_threads(threads);
  struct utsname host {};
  ::uname(&host);
  json machine = {{"description", machine_description()},
                  {"cores", hardware_threads()},
                  {"torch_threads", threads > 0 ? threads : hardware_threads()},
                  {"kernel", std::string(host.release)},
                  {"compiler", __VERSION__}};
  std::fprintf(stderr, "[models_bench] %s\n", machine["description"].get<std::string>().c_str());

  Table table({"model", "params", "MACs", "batch", "mean ms", "± stdev", "median ms", "p99 ms", "img/s"});
  json rows = json::array();
  auto bench = [&](const models::ImageEncoder& encoder) {
    for (int batch : batches) {
      int r = batch == 1 ? reps : std::max(10, reps / 20);
      auto s = models::measure_latency(encoder, batch, r, std::max(5, r / 10));
      table.add_row({encoder.arch(), std::to_string(encoder.parameter_count()),
                     std::to_string(encoder.multiply_adds()), std::to_string(batch),
                     fmt_num(s.mean_ms, 4), fmt_num(s.stdev_ms, 4), fmt_num(s.median_ms, 4),
                     fmt_num(s.p99_ms, 4), fmt_num(batch * 1000.0 / s.median_ms, 0)});
      rows.push_back({{"model", encoder.arch()},
                      {"params", encoder.parameter_count()},
                      {"multiply_adds", encoder.multiply_adds()},
                      {"batch", batch},
                      {"repetitions", s.repetitions},
                      {"mean_ms", s.mean_ms},
                      {"stdev_ms", s.stdev_ms},
                      {"median_ms", s.median_ms},
                      {"p99_ms", s.p99_ms},
                      {"images_per_s", batch * 1000.0 / s.median_ms},
                      {"machine", machine}});
    }
  };
  for (const auto& spec : models::edge_architectures()) bench(*models::make_edge_model(spec.name, data::default_image_spec(), 128));
  if (std::filesystem::exists(fm_path)) {
    bench(*models::load_foundation_model(fm_path).image);
  } else {
    std::fprintf(stderr, "[models_bench] no FM at %s: edge models only\n", fm_path.c_str());
  }
  table.print(std::cout);
  if (!json_path.empty()) write_json_file(json_path, {{"bench", "models"}, {"rows", rows}, {"provenance", provenance()}});
  return 0;
}
