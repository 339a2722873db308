#pragma once
// Options shared by several subcommands, and the few steps they all take.
#include <signal.h>

#include <atomic>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/usage.h"
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
  std::string spec;         // ... and its sample spec (JSON, data/sample_spec.h)
  models::FoundationModel load(const std::string& device = "cpu") const;
  // The options that name this FM again, for a child process (`experiment`, `scenario`).
  std::vector<std::string> arguments() const;
};
void add_fm_options(CLI::App& command, FmOptions& options);

// A sample spec from a file: a spec JSON, or a data set description holding one ("spec").
// Empty path: `fallback`.
data::SampleSpec load_spec_file(const std::string& path, const data::SampleSpec& fallback);

// The shared secret that signs customization artifacts (the file's content, surrounding
// white space dropped); empty path: none. Throws Error when the file is missing or empty.
std::string read_artifact_key(const std::string& path);

// Fraction of images whose nearest pool class is their label.
double zero_shot_accuracy(const models::ImageEncoder& encoder, const models::TextPool& pool,
                          const data::Dataset& dataset);

// While alive, SIGINT and SIGTERM set flag() instead of killing the program (long commands
// stop cleanly: children stopped, what was measured summarized); the previous handlers come
// back when it goes. One at a time.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  static const std::atomic<bool>& flag();

 private:
  struct sigaction old_int_{}, old_term_{};
};

}  // namespace edgefm::cli
