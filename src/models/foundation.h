#pragma once
// The foundation model as the rest of the system sees it: an image encoder, a text encoder
// and the class pool it was trained with. Either the project's reference FM (trained by
// `edgefm fm train`) or a real FM exported as TorchScript plus an embedding-pool file.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "models/encoder.h"
#include "models/text_encoder.h"
#include "models/text_pool.h"

namespace edgefm::models {

struct FoundationModel {
  std::shared_ptr<const ImageEncoder> image;
  std::shared_ptr<const TextEncoder> text;  // may be null for a TorchScript FM without one
  TextPool pool;
  std::string version;  // "reference-fm v2 <content checksum prefix>" or the TorchScript file name
  json meta;            // the reference FM's training settings (empty for TorchScript)
  const data::SampleSpec& spec() const { return image->spec(); }
};

// Loads the reference FM file written by `edgefm fm train`. Throws Error on a wrong or
// corrupt file.
// `device`: "cpu" (default) or "cuda[:n]" when the linked LibTorch has CUDA.
FoundationModel load_foundation_model(const std::filesystem::path& path,
                                      const std::string& device = "cpu");

// A real FM: a TorchScript module mapping n x C x H x W sample tensors (after the spec's
// mean/std) to n x D embeddings (normalised here if it does not), plus an embedding-pool file
// (see text_pool.h) and the sample spec it takes (docs/real-fm.md).
FoundationModel load_torchscript_foundation_model(const std::filesystem::path& module_path,
                                                  const std::filesystem::path& pool_path,
                                                  const data::SampleSpec& spec);

// A CLIP-shaped stand-in with random weights, to try the real-FM path (and measure it)
// where no real weights can be had: writes `dir`/fm.ts (TorchScript: 16 x 16 patch embedding
// of a 3 x 224 x 224 input, mean over patches, five residual 768-3072-768 MLP blocks, a
// projection to 512; 24.2 M parameters), `dir`/pool.json (a seeded random unit vector per
// class name) and `dir`/spec.json (224 x 224 RGB, "shorter" resize, CLIP's mean/std). It
// recognizes nothing: its answers are as good as random.
void write_clip_shaped_stand_in(const std::filesystem::path& dir,
                                const std::vector<std::string>& class_names, uint64_t seed = 3);

}  // namespace edgefm::models
