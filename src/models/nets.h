#pragma once
// Internal to the torch side (models/, customize/distill): the networks themselves.
// Everything else goes through models/encoder.h.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "models/encoder.h"

namespace edgefm::models {

// Every network is a Sequential from sample tensors (n x C x H x W, normalised by the spec)
// to unnormalised embeddings; walking its children gives parameter and multiply-add counts
// for free. Every one takes any spec: the convolutions end in an adaptive pooling to a fixed
// grid (7 x 7, the size 28 x 28 inputs reach, where the pooling is the identity).
struct Net {
  std::string arch;
  mutable torch::nn::Sequential body;  // eval-mode forward does not change the module
  data::SampleSpec spec;
  int embedding_dim = 0;
};

Net make_fm_net(const data::SampleSpec& spec, int embedding_dim, int width);
Net make_edge_net(const std::string& arch, const data::SampleSpec& spec, int embedding_dim);

int64_t count_parameters(const torch::nn::Module& module);
int64_t count_multiply_adds(const Net& net);

// (x - mean) / std per channel when the spec has them; the samples unchanged otherwise.
torch::Tensor normalize_samples(const data::SampleSpec& spec, const torch::Tensor& samples);

// L2-normalised embeddings of a batch of [0, 1] sample tensors (the spec's mean/std applied
// here, in training and inference alike).
torch::Tensor embed_tensor(const Net& net, const torch::Tensor& samples);

// An ImageEncoder over a Net (inference: eval mode, no grad).
class TorchEncoder final : public ImageEncoder {
 public:
  // `device`: where the forward runs ("cpu" or "cuda[:n]"); inputs and outputs stay on the CPU.
  explicit TorchEncoder(Net net, const std::string& device = "cpu");
  std::string arch() const override { return net_.arch; }
  int embedding_dim() const override { return net_.embedding_dim; }
  const data::SampleSpec& spec() const override { return net_.spec; }
  int64_t parameter_count() const override { return parameters_; }
  int64_t multiply_adds() const override { return multiply_adds_; }
  void embed(const float* images, int64_t n, float* out) const override;
  const Net& net() const { return net_; }

 private:
  Net net_;
  torch::Device device_;
  int64_t parameters_;
  int64_t multiply_adds_;
};

// Module weights into / out of an archive under `key`, checking that every parameter and
// buffer is present with the right shape (a clear Error otherwise).
void write_net(torch::serialize::OutputArchive& archive, const std::string& key, const Net& net);
void read_net(torch::serialize::InputArchive& archive, const std::string& key, Net& net,
              const std::string& context);

// Parses "cpu" / "cuda" / "cuda:1"; throws Error when CUDA is asked for and this LibTorch
// has none (Debian's is CPU-only) or no GPU is visible.
torch::Device parse_device(const std::string& device);

// Light augmentation used by FM training and distillation, fitted to the modality: images
// get a random horizontal flip and a random shift of up to `max_shift` pixels (zero padded);
// log-mel spectrograms only a random time shift of up to `max_shift` frames (no flip: time
// does not run backwards, and no shift across mel bands: that would change the pitch).
torch::Tensor augment(const torch::Tensor& samples, int max_shift, data::Modality modality);

}  // namespace edgefm::models
