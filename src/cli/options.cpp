#include "cli/options.h"

#include <algorithm>
#include <fstream>

#include "common/error.h"
#include "common/json_io.h"
#include "customize/job.h"

namespace edgefm::cli {

data::DatasetDescription DataOptions::description() const {
  return description_path.empty() ? data::fashion_mnist_description()
                                  : data::load_description(description_path);
}

void add_data_options(CLI::App& command, DataOptions& options) {
  command.add_option("--data", options.description_path,
                     "Data set description JSON (default: Fashion-MNIST from "
                     "/usr/share/datasets/fashion-mnist; see configs/fashion-mnist.json)");
  command.add_option("--train-limit", options.train_limit,
                     "Use only the first N training images (0: all)");
  command.add_option("--test-limit", options.test_limit, "Use only the first N test images (0: all)");
}

models::FoundationModel FmOptions::load(const std::string& device) const {
  if (!torchscript.empty()) {
    if (pool.empty()) {
      throw Error("--fm-torchscript needs --fm-pool: the FM's embedding-pool file (class -> vector)");
    }
    if (spec.empty()) {
      throw Error("--fm-torchscript needs --fm-spec: a JSON file saying what a sample is for it "
                  "(e.g. {\"modality\": \"image\", \"shape\": [3, 224, 224], \"mean\": [...], "
                  "\"std\": [...]}; docs/real-fm.md)");
    }
    return models::load_torchscript_foundation_model(
        torchscript, pool, data::spec_from_json(read_json_file(spec), "--fm-spec '" + spec + "'"));
  }
  if (!pool.empty() || !spec.empty()) {
    throw Error("--fm-pool and --fm-spec go with --fm-torchscript (the reference FM file holds both)");
  }
  return models::load_foundation_model(path, device);
}

data::SampleSpec load_spec_file(const std::string& path, const data::SampleSpec& fallback) {
  if (path.empty()) return fallback;
  const json j = read_json_file(path);
  if (j.is_object() && j.contains("source")) {
    const auto description = data::load_description(path);
    return description.spec ? *description.spec : fallback;
  }
  return data::spec_from_json(j, "sample spec '" + path + "'");
}

std::string read_artifact_key(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("--artifact-key-file '" + path + "': cannot read it");
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto first = key.find_first_not_of(" \t\r\n");
  const auto last = key.find_last_not_of(" \t\r\n");
  if (first == std::string::npos || last - first + 1 < 16) {
    fail_expected("--artifact-key-file '" + path + "'", "a secret of at least 16 bytes",
                  first == std::string::npos ? "an empty file"
                                             : std::to_string(last - first + 1) + " bytes");
  }
  return key.substr(first, last - first + 1);
}

std::vector<std::string> FmOptions::arguments() const {
  if (torchscript.empty()) return {"--fm", path};
  return {"--fm-torchscript", torchscript, "--fm-pool", pool, "--fm-spec", spec};
}

void add_fm_options(CLI::App& command, FmOptions& options) {
  command.add_option("--fm", options.path, "Reference FM file from `edgefm fm train`")
      ->capture_default_str();
  command.add_option("--fm-torchscript", options.torchscript,
                     "A real FM instead: TorchScript encoder (n x C x H x W sample tensors -> n x D; "
                     "docs/real-fm.md)");
  command.add_option("--fm-pool", options.pool,
                     "Embedding-pool JSON for --fm-torchscript (format edgefm-pool)");
  command.add_option("--fm-spec", options.spec,
                     "Sample spec JSON for --fm-torchscript: modality, shape, preprocessing, "
                     "mean/std (docs/data.md)");
}

double zero_shot_accuracy(const models::ImageEncoder& encoder, const models::TextPool& pool,
                          const data::Dataset& dataset) {
  if (dataset.size() == 0) return 0;
  auto embedded = customize::embed_dataset(encoder, pool, dataset);
  return customize::fraction_correct(customize::correct_predictions(
      embedded, customize::pool_to_label(pool, dataset), dataset.labels));
}

namespace {
std::atomic<bool> g_stop{false};
void on_stop_signal(int) { g_stop = true; }
}  // namespace

StopSignals::StopSignals() {
  g_stop = false;
  struct sigaction action{};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &old_int_);
  sigaction(SIGTERM, &action, &old_term_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

const std::atomic<bool>& StopSignals::flag() { return g_stop; }

}  // namespace edgefm::cli
