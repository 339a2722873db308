#pragma once
// The reference FM: a stand-in for CLIP/ImageBind that this project trains itself (no
// pretrained weights can be downloaded here). A much larger image encoder than any edge
// model plus a text encoder over prompt words, trained CLIP-style: image embeddings are
// pulled towards the embedding of their class's prompts with a learned temperature.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace edgefm::models {

struct FmTrainParams {
  int epochs = 3;            // 91.05 % zero-shot in 351 s on 2 idle cores (README)
  int batch_size = 256;
  double learning_rate = 4e-3;
  double weight_decay = 5e-4;
  int embedding_dim = 128;
  int width = 32;       // channels of the first conv block; later blocks use 2x and 4x
  int max_shift = 2;    // augmentation: random shift in pixels (and a random flip)
  double initial_temperature = 0.07;
  uint64_t seed = 1;
  size_t train_limit = 0;  // >0: train on the first N images only (tests)
};
FmTrainParams fm_default_params();

struct FmTrainResult {
  double seconds = 0;
  double images_per_second = 0;
  double final_loss = 0;
  double temperature = 0;
  double test_accuracy = -1;  // zero-shot top-1 on `test` when given
  int64_t parameters = 0;
};

// Trains on `train` (class names from the data set, prompts from the templates) and writes
// one versioned file to `out`. Reports progress (epoch, step, loss, images/s, ETA) on stderr.
// When `test` is non-empty, zero-shot accuracy on it is measured after each epoch.
FmTrainResult train_fm(const data::Dataset& train, const data::Dataset& test,
                       const std::vector<std::string>& prompt_templates,
                       const FmTrainParams& params, const std::filesystem::path& out);

// Words of a prompt as the text encoder sees them: lower case, split on spaces and
// punctuation except '-' ("T-Shirt!" -> {"t-shirt"}).
std::vector<std::string> prompt_words(const std::string& prompt);

}  // namespace edgefm::models
