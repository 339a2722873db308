#pragma once
// Options shared by several subcommands, and the few steps they all take.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "data/dataset.h"
#include "models/encoder.h"
#include "models/foundation.h"
#include "models/text_pool.h"

namespace edgefm::cli {

struct DataOptions {
  std::string description_path;  // empty: Fashion-MNIST from Debian
  size_t train_limit = 0;
  size_t test_limit = 0;
  data::DatasetDescription description() const;
};
void add_data_options(CLI::App& command, DataOptions& options);

struct FmOptions {
  std::string path = "models/fm.pt";
  std::string torchscript;  // a real FM: TorchScript image encoder ...
  std::string pool;         // ... plus its embedding-pool file
  models::FoundationModel load(const std::string& device = "cpu") const;
};
void add_fm_options(CLI::App& command, FmOptions& options);

// Fraction of images whose nearest pool class is their label.
double zero_shot_accuracy(const models::ImageEncoder& encoder, const models::TextPool& pool,
                          const data::Dataset& dataset);

}  // namespace edgefm::cli
