#pragma once
// A customized edge model as one versioned artifact file: the small model's weights, its
// architecture, the text pool it was trained against, and what the edge needs to route
// (score state, calibration profile) in `meta`. No torch here.
#include <filesystem>
#include <memory>
#include <string>

#include "common/json_io.h"
#include "models/encoder.h"
#include "models/text_pool.h"

namespace edgefm::models {

struct Student {
  std::shared_ptr<const ImageEncoder> encoder;
  TextPool pool;
  // Always has "arch", "embedding_dim", "version"; the customizer adds "score",
  // "calibration", "trained_on", ... (see customize/distill.h).
  json meta;
};

// Throws Error naming the file when it is missing, corrupt, of another format or version,
// or when its weights do not fit its architecture.
Student load_student(const std::filesystem::path& path);

constexpr const char* kStudentFormat = "edgefm-student";
constexpr int kStudentFormatVersion = 1;

}  // namespace edgefm::models
