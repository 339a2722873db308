#pragma once
// The edge model pool: small architectures of different cost, each ending in a projection to
// the FM's embedding dimension. No torch here.
#include <memory>
#include <string>
#include <vector>

#include "models/encoder.h"

namespace edgefm::models {

struct ArchSpec {
  std::string name;
  std::string description;
};

// Ordered from cheapest to most expensive; the first is "the smallest edge model".
const std::vector<ArchSpec>& edge_architectures();
// Throws Error listing the known names when `name` is not one of them.
void check_edge_architecture(const std::string& name);

// A freshly initialised (untrained) edge model, deterministic for a seed.
std::unique_ptr<ImageEncoder> make_edge_model(const std::string& arch,
                                              const data::SampleSpec& spec, int embedding_dim,
                                              uint64_t seed = 1);

// Torch's intra-op pool sized from the core count (0: all cores); see common/threads.h.
void configure_torch_threads(int threads = 0);

}  // namespace edgefm::models
