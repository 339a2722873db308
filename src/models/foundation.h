#pragma once
// The foundation model as the rest of the system sees it: an image encoder, a text encoder
// and the class pool it was trained with. Either the project's reference FM (trained by
// `edgefm fm train`) or a real FM exported as TorchScript plus an embedding-pool file.
#include <filesystem>
#include <memory>
#include <string>

#include "models/encoder.h"
#include "models/text_encoder.h"
#include "models/text_pool.h"

namespace edgefm::models {

struct FoundationModel {
  std::shared_ptr<const ImageEncoder> image;
  std::shared_ptr<const TextEncoder> text;  // may be null for a TorchScript FM without one
  TextPool pool;
  std::string version;  // "reference-fm v2 <checksum prefix>" or the TorchScript file name
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

}  // namespace edgefm::models
