#pragma once
// One customization: pick what the edge uploads, have the FM embed and pseudo-label only
// those samples, distill a student, fit its routing score and measure its calibration
// profile. Torch-free: models are reached through their interfaces.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/json_io.h"
#include "customize/distill.h"
#include "data/dataset.h"
#include "models/foundation.h"
#include "models/student.h"
#include "route/scores.h"
#include "route/threshold.h"

namespace edgefm::customize {

// What an encoder makes of a set of images against a pool.
struct Embedded {
  size_t n = 0;
  int dim = 0;
  int classes = 0;
  std::vector<float> embeddings;    // n x dim
  std::vector<float> similarities;  // n x classes
  std::vector<int> predictions;     // pool index of the nearest class
};
Embedded embed_images(const models::ImageEncoder& encoder, const models::TextPool& pool,
                      const float* images, size_t n);
Embedded embed_dataset(const models::ImageEncoder& encoder, const models::TextPool& pool,
                       const data::Dataset& dataset);

// Pool index -> data-set label by class name (-1 when the data set lacks the class).
std::vector<int> pool_to_label(const models::TextPool& pool, const data::Dataset& dataset);

// Per image: is the predicted pool class (mapped by `to_label`) the image's label?
std::vector<bool> correct_predictions(const Embedded& embedded, const std::vector<int>& to_label,
                                      const std::vector<int>& labels);
// Share of true entries (0 for none).
double fraction_correct(const std::vector<bool>& correct);

// Appends `count` synthetic outliers made from the set's own images (distill.h), embedded by
// the FM and labelled kNoLabel (the student imitates them with the MSE term only).
void add_synthetic_outliers(const models::FoundationModel& fm, size_t count, uint64_t seed,
                            DistillSet& set);

struct CustomizeParams {
  DistillParams distill = distill_default_params();
  std::string strategy = "margin_diversity";  // random | lowest_margin | margin_diversity
  std::string budget = "20%";  // "20%", "0.2" (of budget_base) or a count "5000"
  size_t budget_base = 0;      // images a fractional budget refers to (0: the candidates)
  // Rounds of upload: round 1 uploads a random bootstrap share of the budget, later rounds
  // select by the strategy with the student of the previous round. One round with a
  // non-random strategy needs `initial_student`.
  int rounds = 2;
  double bootstrap_share = 0.3;
  std::string initial_student;
  // Synthetic outliers per uploaded image, embedded by the FM and imitated by the student
  // (MSE only): shapes the student's space for samples of classes it never saw.
  double outlier_share = 0.0;
  std::string score = "margin";  // the routing score shipped in the artifact
  json score_params = json::object();
  int version = 1;
  uint64_t seed = 1;
};
CustomizeParams customize_default_params();

struct CustomizeReport {
  std::string artifact;
  std::string arch;
  size_t candidates = 0;
  size_t budget_base = 0;  // the images the upload fraction is measured against
  size_t uploaded = 0;
  size_t fm_queries = 0;  // uploads + calibration images
  double seconds = 0;
  double validation_edge_accuracy = 0;
  double validation_fm_accuracy = 0;
  json to_json() const;
};

// `candidates`: the edge's unlabeled images (labels unused); `validation`: held-out labelled
// images for the calibration profile; `classes`: the pool the student is trained against
// (names from the FM's pool). Writes the student artifact to `out`.
CustomizeReport customize(const models::FoundationModel& fm, const data::Dataset& candidates,
                          const data::Dataset& validation, const std::vector<std::string>& classes,
                          const CustomizeParams& params, const std::filesystem::path& out);

// Calibration profile of a student with the FM as the cloud, on labelled images.
route::CalibrationProfile calibrate(const Embedded& edge, const Embedded& fm,
                                    const std::vector<int>& edge_to_label,
                                    const std::vector<int>& fm_to_label,
                                    const std::vector<int>& labels,
                                    const route::ConfidenceScore& score);

}  // namespace edgefm::customize
