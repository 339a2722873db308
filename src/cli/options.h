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
  models::FoundationModel load() const;
};
void add_fm_options(CLI::App& command, FmOptions& options);

// Embeddings of every image of the data set and the nearest pool class of each.
struct Embedded {
  std::vector<float> embeddings;  // n x dim
  std::vector<float> similarities;  // n x pool.size()
  std::vector<int> predictions;   // index into the pool
  int dim = 0;
  int classes = 0;
};
Embedded embed_dataset(const models::ImageEncoder& encoder, const models::TextPool& pool,
                       const data::Dataset& dataset);

// Maps pool indices to data-set label indices by class name (-1 when the data set has no
// such class).
std::vector<int> pool_to_label(const models::TextPool& pool, const data::Dataset& dataset);

// Fraction of images whose nearest pool class is their label.
double zero_shot_accuracy(const models::ImageEncoder& encoder, const models::TextPool& pool,
                          const data::Dataset& dataset);

}  // namespace edgefm::cli
