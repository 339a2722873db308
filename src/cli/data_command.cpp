// edgefm data: look at a data set as the system sees it, and export it as a class-folder tree.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/progress.h"
#include "common/table.h"
#include "data/dataset.h"
#include "data/image.h"

namespace edgefm::cli {
namespace {

struct DataCommandOptions {
  DataOptions data;
  std::string part = "test";
  std::string out;
  std::string spec_path;  // export: resize/convert to this spec first
  std::string json_path;
};

data::Part parse_part(const std::string& part) {
  if (part == "train") return data::Part::train;
  if (part == "test") return data::Part::test;
  fail_expected("--part", "train or test", "'" + part + "'");
}

data::Dataset load_part(const DataCommandOptions& o) {
  const auto description = o.data.description();
  return data::load_dataset(description, parse_part(o.part),
                            o.part == "train" ? o.data.train_limit : o.data.test_limit);
}

void run_info(const DataCommandOptions& o) {
  const auto set = load_part(o);
  std::vector<size_t> counts(set.class_names.size(), 0);
  for (int label : set.labels) {
    if (label >= 0) ++counts[static_cast<size_t>(label)];
  }
  std::printf("%s: %zu samples of %s, %zu classes, %zu files skipped\n", set.name.c_str(),
              set.size(), set.spec.describe().c_str(), set.class_names.size(), set.skipped.size());
  for (const auto& bad : set.skipped) std::printf("  skipped %s\n", bad.c_str());
  Table table({"label", "class", "samples"});
  json classes = json::array();
  for (size_t c = 0; c < counts.size(); ++c) {
    table.add_row({std::to_string(c), set.class_names[c], std::to_string(counts[c])});
    classes.push_back({{"label", c}, {"name", set.class_names[c]}, {"samples", counts[c]}});
  }
  table.print(std::cout);
  if (!o.json_path.empty()) {
    write_json_file(o.json_path, {{"name", set.name},
                                  {"samples", set.size()},
                                  {"spec", data::to_json(set.spec)},
                                  {"classes", classes},
                                  {"skipped", set.skipped}});
  }
}

// Sample tensor (planar C x H x W bytes) -> an 8-bit image (interleaved).
data::DecodedImage to_image(const uint8_t* sample, const data::TensorShape& shape) {
  data::DecodedImage image;
  image.width = shape.width;
  image.height = shape.height;
  image.channels = shape.channels;
  const size_t plane = static_cast<size_t>(shape.width) * shape.height;
  image.pixels.resize(plane * static_cast<size_t>(shape.channels));
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < shape.channels; ++c) {
      image.pixels[i * static_cast<size_t>(shape.channels) + static_cast<size_t>(c)] =
          sample[static_cast<size_t>(c) * plane + i];
    }
  }
  return image;
}

void run_export(const DataCommandOptions& o) {
  const auto set = load_part(o);
  if (set.spec.modality != data::Modality::image) {
    throw Error("data export: writes images; '" + set.name + "' holds " + set.spec.describe());
  }
  const data::SampleSpec target = load_spec_file(o.spec_path, set.spec);
  const std::filesystem::path root(o.out);
  Progress progress("data export", static_cast<int64_t>(set.size()), "files");
  for (size_t i = 0; i < set.size(); ++i) {
    auto image = to_image(set.sample(i), set.spec.shape);
    if (target.shape != set.spec.shape) {
      image = to_image(data::preprocess_image(image, target).data(), target.shape);
    }
    const int label = set.labels[i];
    const std::string folder = label >= 0 ? set.class_names[static_cast<size_t>(label)] : "unlabelled";
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.png", i);
    const auto path = root / folder / name;
    std::filesystem::create_directories(path.parent_path());
    data::write_png(path, image);
    if (i % 500 == 0) progress.update(static_cast<int64_t>(i + 1));
  }
  progress.finish();
  std::fprintf(stderr, "[data] wrote %zu PNG files of %s under %s\n", set.size(),
               data::to_string(target.shape).c_str(), o.out.c_str());
}

}  // namespace

void add_data_command(CLI::App& app) {
  auto o = std::make_shared<DataCommandOptions>();
  auto* data = app.add_subcommand(
      "data", "Look at a data set as EdgeFM loads it (`info`), or write it as a PNG class-folder\n"
              "tree (`export`); data set descriptions and sample specs: docs/data.md");
  data->require_subcommand(1);
  auto* info = data->add_subcommand("info", "Samples per class, the sample spec, files skipped");
  auto* exporter = data->add_subcommand(
      "export", "Write a part as <out>/<class>/<index>.png (converted to --spec's channels and size)");
  for (auto* c : {info, exporter}) {
    add_data_options(*c, o->data);
    c->add_option("--part", o->part, "train or test")->capture_default_str();
  }
  info->add_option("--json", o->json_path, "also write the counts as JSON");
  exporter->add_option("--out-dir", o->out, "folder to write")->required();
  exporter->add_option("--spec", o->spec_path,
                       "sample spec JSON to convert to first (e.g. {\"shape\": [3, 32, 32]})");
  info->callback([o] { run_info(*o); });
  exporter->callback([o] { run_export(*o); });
}

}  // namespace edgefm::cli
