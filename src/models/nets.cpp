#include "models/nets.h"

#include <algorithm>

#include "common/error.h"
#include "common/threads.h"
#include "models/edge.h"

namespace edgefm::models {
namespace nn = torch::nn;

namespace {

nn::Conv2d conv(int in, int out, int kernel, int stride = 1, int groups = 1, bool bias = false) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel)
                        .stride(stride)
                        .padding(kernel / 2)
                        .groups(groups)
                        .bias(bias));
}

void conv_bn_relu(nn::Sequential& s, int in, int out, int kernel, int stride = 1, int groups = 1) {
  s->push_back(conv(in, out, kernel, stride, groups));
  s->push_back(nn::BatchNorm2d(out));
  s->push_back(nn::ReLU());
}

// Depthwise 3x3 then pointwise 1x1, each with batch norm and ReLU (MobileNet v1 block).
void separable(nn::Sequential& s, int in, int out, int stride) {
  conv_bn_relu(s, in, in, 3, stride, in);
  conv_bn_relu(s, in, out, 1);
}

}  // namespace

// The head's input grid: what 28 x 28 reaches after two 2x poolings.
constexpr int kGrid = 7;

Net make_fm_net(const data::SampleSpec& spec, int embedding_dim, int width) {
  data::validate(spec, "reference FM");
  // Three conv blocks (w, 2w, 4w channels) and a wide projection head: most of the
  // parameters sit in the head, most of the compute in the convolutions.
  const int w = width;
  nn::Sequential s;
  conv_bn_relu(s, spec.shape.channels, w, 3);
  s->push_back(nn::MaxPool2d(2));
  conv_bn_relu(s, w, 2 * w, 3);
  s->push_back(nn::MaxPool2d(2));
  conv_bn_relu(s, 2 * w, 4 * w, 3);
  s->push_back(nn::AdaptiveAvgPool2d(kGrid));
  s->push_back(nn::Flatten());
  s->push_back(nn::Dropout(0.3));
  s->push_back(nn::Linear(4 * w * kGrid * kGrid, 512));
  s->push_back(nn::BatchNorm1d(512));
  s->push_back(nn::ReLU());
  s->push_back(nn::Linear(512, embedding_dim));
  return {"reference-fm", s, spec, embedding_dim};
}

const std::vector<ArchSpec>& edge_architectures() {
  static const std::vector<ArchSpec> specs = {
      {"tiny-cnn", "2 conv layers (16, 32 channels), max pooling, 2 linear layers"},
      {"mobilenet", "MobileNet-style depthwise-separable blocks (32-128 channels), avg pooling"},
      {"wide-cnn", "3 conv layers (32, 64, 64 channels) with batch norm, 2 linear layers"},
  };
  return specs;
}

void check_edge_architecture(const std::string& name) {
  std::string known;
  for (const auto& spec : edge_architectures()) {
    if (spec.name == name) return;
    known += (known.empty() ? "" : ", ") + spec.name;
  }
  fail_expected("edge architecture", "one of " + known, "'" + name + "'");
}

Net make_edge_net(const std::string& arch, const data::SampleSpec& spec, int embedding_dim) {
  check_edge_architecture(arch);
  data::validate(spec, "edge model '" + arch + "'");
  const int channels = spec.shape.channels;
  nn::Sequential s;
  if (arch == "tiny-cnn") {
    s->push_back(conv(channels, 16, 3, 1, 1, true));
    s->push_back(nn::ReLU());
    s->push_back(nn::MaxPool2d(2));
    s->push_back(conv(16, 32, 3, 1, 1, true));
    s->push_back(nn::ReLU());
    s->push_back(nn::MaxPool2d(2));
    s->push_back(nn::AdaptiveAvgPool2d(kGrid));
    s->push_back(nn::Flatten());
    s->push_back(nn::Linear(32 * kGrid * kGrid, 64));
    s->push_back(nn::ReLU());
    s->push_back(nn::Linear(64, embedding_dim));
  } else if (arch == "mobilenet") {
    conv_bn_relu(s, channels, 32, 3);
    separable(s, 32, 64, 2);
    separable(s, 64, 128, 2);
    separable(s, 128, 128, 1);
    s->push_back(nn::AdaptiveAvgPool2d(1));
    s->push_back(nn::Flatten());
    s->push_back(nn::Linear(128, embedding_dim));
  } else {  // wide-cnn
    conv_bn_relu(s, channels, 32, 3);
    s->push_back(nn::MaxPool2d(2));
    conv_bn_relu(s, 32, 64, 3);
    s->push_back(nn::MaxPool2d(2));
    conv_bn_relu(s, 64, 64, 3);
    s->push_back(nn::AdaptiveAvgPool2d(kGrid));
    s->push_back(nn::Flatten());
    s->push_back(nn::Linear(64 * kGrid * kGrid, 128));
    s->push_back(nn::ReLU());
    s->push_back(nn::Linear(128, embedding_dim));
  }
  return {arch, s, spec, embedding_dim};
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

int64_t count_multiply_adds(const Net& net) {
  torch::NoGradGuard no_grad;
  bool was_training = net.body->is_training();
  net.body->eval();
  const auto& shape = net.spec.shape;
  auto x = torch::zeros({1, shape.channels, shape.height, shape.width});
  int64_t total = 0;
  for (const auto& child : net.body->children()) {
    auto in = x;
    if (auto* c = child->as<nn::Conv2dImpl>()) {
      x = c->forward(in);
      const auto& o = c->options;
      int64_t k = o.kernel_size()->at(0) * o.kernel_size()->at(1);
      total += x.numel() * (o.in_channels() / o.groups()) * k;
    } else if (auto* l = child->as<nn::LinearImpl>()) {
      x = l->forward(in);
      total += l->options.in_features() * l->options.out_features();
    } else if (auto* m = child->as<nn::MaxPool2dImpl>()) {
      x = m->forward(in);
    } else if (auto* a = child->as<nn::AdaptiveAvgPool2dImpl>()) {
      x = a->forward(in);
    } else if (auto* f = child->as<nn::FlattenImpl>()) {
      x = f->forward(in);
    } else if (auto* b = child->as<nn::BatchNorm2dImpl>()) {
      x = b->forward(in);
    } else if (auto* b1 = child->as<nn::BatchNorm1dImpl>()) {
      x = b1->forward(in);
    } else if (auto* r = child->as<nn::ReLUImpl>()) {
      x = r->forward(in);
    } else if (auto* d = child->as<nn::DropoutImpl>()) {
      x = d->forward(in);
    } else {
      throw Error("count_multiply_adds: unsupported layer " + child->name());
    }
  }
  if (was_training) net.body->train();
  return total;
}

torch::Tensor normalize_samples(const data::SampleSpec& spec, const torch::Tensor& samples) {
  if (spec.mean.empty()) return samples;
  const auto c = static_cast<int64_t>(spec.mean.size());
  auto mean = torch::tensor(spec.mean).view({1, c, 1, 1}).to(samples.device());
  auto std = torch::tensor(spec.std).view({1, c, 1, 1}).to(samples.device());
  return (samples - mean) / std;
}

torch::Tensor embed_tensor(const Net& net, const torch::Tensor& samples) {
  return torch::nn::functional::normalize(net.body->forward(normalize_samples(net.spec, samples)),
                                          torch::nn::functional::NormalizeFuncOptions().dim(1));
}

torch::Device parse_device(const std::string& device) {
  if (device == "cpu") return torch::kCPU;
  if (device.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw Error("device '" + device + "': expected a LibTorch with CUDA and a visible GPU, "
                  "this one has none (Debian's LibTorch is CPU-only; see scripts/device-bench.sh)");
    }
    return torch::Device(device);
  }
  fail_expected("device", "cpu, cuda or cuda:N", "'" + device + "'");
}

TorchEncoder::TorchEncoder(Net net, const std::string& device)
    : net_(std::move(net)),
      device_(parse_device(device)),
      parameters_(count_parameters(*net_.body)),
      multiply_adds_(count_multiply_adds(net_)) {
  net_.body->eval();
  net_.body->to(device_);
}

void TorchEncoder::embed(const float* images, int64_t n, float* out) const {
  if (n <= 0) return;
  torch::NoGradGuard no_grad;
  const auto& shape = net_.spec.shape;
  auto input = torch::from_blob(const_cast<float*>(images),
                                {n, shape.channels, shape.height, shape.width});
  auto result = embed_tensor(net_, input.to(device_)).to(torch::kCPU).contiguous();
  std::copy_n(result.data_ptr<float>(), n * net_.embedding_dim, out);
}

std::unique_ptr<ImageEncoder> make_edge_model(const std::string& arch,
                                              const data::SampleSpec& spec, int embedding_dim,
                                              uint64_t seed) {
  torch::manual_seed(seed);
  return std::make_unique<TorchEncoder>(make_edge_net(arch, spec, embedding_dim));
}

void configure_torch_threads(int threads) {
  pin_openblas_to_one_thread();
  torch::set_num_threads(threads > 0 ? threads : hardware_threads());
}

void write_net(torch::serialize::OutputArchive& archive, const std::string& key, const Net& net) {
  torch::serialize::OutputArchive nested;
  net.body->save(nested);
  archive.write(key, nested);
}

void read_net(torch::serialize::InputArchive& archive, const std::string& key, Net& net,
              const std::string& context) {
  torch::serialize::InputArchive nested;
  if (!archive.try_read(key, nested)) throw Error(context + ": no '" + key + "' weights");
  try {
    net.body->load(nested);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw Error(context + ": the weights do not fit architecture '" + net.arch +
                "' (" + what.substr(0, what.find('\n')).substr(0, 300) + ")");
  }
}

torch::Tensor augment(const torch::Tensor& images, int max_shift, data::Modality modality) {
  const int64_t n = images.size(0);
  const bool image = modality == data::Modality::image;
  auto out = images;
  if (image) {
    auto flip = torch::rand({n}) < 0.5;
    out = torch::where(flip.view({n, 1, 1, 1}), images.flip({3}), images);
  }
  if (max_shift <= 0) return out;
  const int64_t h = images.size(2), w = images.size(3);
  const int64_t pad_y = image ? max_shift : 0;
  auto padded = torch::constant_pad_nd(out, {max_shift, max_shift, pad_y, pad_y}, 0);
  auto dx = torch::randint(0, 2 * max_shift + 1, {n});
  auto dy = torch::randint(0, 2 * pad_y + 1, {n});
  std::vector<torch::Tensor> crops;
  crops.reserve(n);
  auto dx_a = dx.accessor<int64_t, 1>();
  auto dy_a = dy.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    crops.push_back(padded[i].slice(1, dy_a[i], dy_a[i] + h).slice(2, dx_a[i], dx_a[i] + w));
  }
  return torch::stack(crops);
}

}  // namespace edgefm::models
