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
  // Always has "arch", "embedding_dim", "spec", "version"; the customizer adds "score",
  // "calibration", "trained_on", ... (see customize/distill.h).
  json meta;
};

// Throws Error naming the file when it is missing, corrupt, of another format or version,
// or when its weights do not fit its architecture.
Student load_student(const std::filesystem::path& path);

// Writes the artifact atomically. The encoder must be one of this project's edge models
// (from make_edge_model, load_student or customize::distill); throws Error otherwise.
// Sets meta "arch", "embedding_dim", "spec" (the encoder's) and, when absent, "version".
void save_student(const std::filesystem::path& path, const ImageEncoder& encoder,
                  const TextPool& pool, json meta);

// Why a loaded model must not serve; empty when it is sound: every parameter and buffer of
// a torch edge model is finite, and embedding one zero sample of the encoder's spec shape
// gives `expected_dim` finite values. One line, naming the first tensor at fault.
std::string unsound_reason(const ImageEncoder& encoder, int expected_dim);

constexpr const char* kStudentFormat = "edgefm-student";
constexpr int kStudentFormatVersion = 1;

}  // namespace edgefm::models
