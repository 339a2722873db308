#pragma once
// Semantic distillation: the student learns to produce the FM's embedding (MSE) and to be
// classified correctly against the text pool (InfoNCE with temperature tau), on unlabeled
// samples pseudo-labelled by the FM's nearest pool vector. No torch in this header.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/json_io.h"
#include "models/encoder.h"
#include <memory>
#include "models/text_pool.h"

namespace edgefm::customize {

struct DistillParams {
  std::string arch = "tiny-cnn";
  int epochs = 15;
  int batch_size = 128;
  double learning_rate = 3e-3;
  double weight_decay = 1e-4;
  double lambda = 1.0;        // weight of the InfoNCE term
  double temperature = 0.07;  // tau of the InfoNCE term
  bool augment = true;        // random flip + shift of the student's input
  int max_shift = 2;          // pixels of that shift
  // Class balance of the draws, an exponent in [0, 1]: above 0, each epoch draws its n samples
  // with replacement, every labelled sample weighted by (samples of its pseudo-label)^-balance,
  // so 1 gives each class present the same share of the labelled draws and 0.5 the square root
  // of its size; unlabelled samples (synthetic outliers) keep their share. After a shift, a new
  // class has a few dozen uploads against thousands of the old ones; full balance also blows up
  // the handful of images the FM gives a class the device never showed (class_balanced_weights).
  double balance = 0.0;
  uint64_t seed = 1;
  std::string warm_start;     // a previous student artifact of the same architecture
  // Called after every optimizer step with (steps done, total steps); may throw to abort
  // the training (the customization service reports progress and stops jobs through it).
  std::function<void(int64_t, int64_t)> on_step;
};
DistillParams distill_default_params();

// The per-sample draw weights of DistillParams::balance (summing to 1): labelled samples share
// (labelled / n) in proportion to count(class)^(1 - exponent) per class, equally within their
// class; each unlabelled sample (kNoLabel) gets 1 / n. Exponent 0: uniform; 1: every class the
// same share. Labels must be kNoLabel or >= 0 and the exponent in [0, 1] (throws Error).
std::vector<double> class_balanced_weights(const std::vector<int>& pseudo_labels, double exponent = 1.0);

// Unlabeled samples as the cloud has them after upload: images and the FM's embeddings.
inline constexpr int kNoLabel = -1;

struct DistillSet {
  data::SampleSpec spec = data::default_image_spec();  // the FM's: what each sample is
  std::vector<float> images;          // n x C x H x W in [0, 1]
  std::vector<float> fm_embeddings;   // n x D, L2-normalised
  // Index into the pool (nearest pool vector); kNoLabel for a sample that only has an FM
  // embedding to imitate (a synthetic outlier): it enters the MSE term, not InfoNCE.
  std::vector<int> pseudo_labels;
  size_t size() const { return pseudo_labels.size(); }
};

// Synthetic outliers made from `n` samples of `shape` (each channel treated alike): a left half
// spliced to another image's right half, a top half to another's bottom half, quadrants
// shuffled, or a 50/50 blend of two images. None is a real object of any class, so
// imitating the FM on them teaches the student what "none of my classes" looks like in the
// FM's space, without ever seeing an unseen class. Deterministic for a seed.
std::vector<float> synthesize_outliers(const std::vector<float>& images, size_t n,
                                       const data::TensorShape& shape, size_t count,
                                       uint64_t seed);

// Pseudo-labels: index of the nearest pool vector of each FM embedding.
std::vector<int> pseudo_label(const std::vector<float>& fm_embeddings,
                              const models::TextPool& pool);

struct DistillResult {
  std::shared_ptr<const models::ImageEncoder> student;  // save with models::save_student
  json summary;  // the training settings and final losses, for the artifact's meta
  double seconds = 0;
  double final_loss = 0;
  double final_mse = 0;
  double final_info_nce = 0;
  int64_t parameters = 0;
};

// Trains the student (reports progress on stderr).
DistillResult distill(const DistillSet& set, const models::TextPool& pool,
                      const DistillParams& params);

// The two terms of the loss, exactly as training computes them (exposed for tests):
// MSE = mean over the batch of ||student - fm||^2; InfoNCE = mean cross-entropy of
// (student . pool^T / tau) against the pseudo-labels.
double mse_loss(const float* student, const float* fm, size_t n, int d);
double info_nce_loss(const float* student, size_t n, int d, const float* pool, int k,
                     const int* labels, double temperature);

}  // namespace edgefm::customize
