#include "customize/distill.h"

#include <chrono>
#include <cmath>
#include <map>
#include <random>

#include "common/error.h"
#include "common/progress.h"
#include "models/nets.h"
#include "models/student_io.h"
#include "route/similarity.h"

namespace edgefm::customize {
namespace F = torch::nn::functional;

namespace {

torch::Tensor mse_term(const torch::Tensor& student, const torch::Tensor& fm) {
  return (student - fm).pow(2).sum(1).mean();
}

torch::Tensor info_nce_term(const torch::Tensor& student, const torch::Tensor& pool,
                            const torch::Tensor& labels, double temperature) {
  auto labelled = labels.ne(kNoLabel);
  if (!labelled.any().item<bool>()) return torch::zeros({});
  auto rows = labelled.nonzero().squeeze(1);
  return F::cross_entropy(student.index_select(0, rows).matmul(pool.t()) / temperature,
                          labels.index_select(0, rows));
}

torch::Tensor view(const float* data, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(data), shape);
}

}  // namespace

DistillParams distill_default_params() { return DistillParams{}; }

std::vector<double> class_balanced_weights(const std::vector<int>& pseudo_labels, double exponent) {
  if (!(exponent >= 0.0 && exponent <= 1.0)) {
    fail_expected("class balance", "an exponent in [0, 1]", std::to_string(exponent));
  }
  std::map<int, size_t> per_class;
  size_t labelled = 0;
  for (int label : pseudo_labels) {
    if (label == kNoLabel) continue;
    if (label < 0) fail_expected("pseudo-label", "a pool index >= 0 or kNoLabel (-1)", std::to_string(label));
    ++per_class[label];
    ++labelled;
  }
  const auto n = static_cast<double>(pseudo_labels.size());
  // Each labelled sample's raw weight is count^-exponent; the labelled ones share labelled / n.
  double raw_total = 0.0;
  for (const auto& [label, count] : per_class) {
    raw_total += std::pow(static_cast<double>(count), 1.0 - exponent);
  }
  std::vector<double> weights(pseudo_labels.size(), 0.0);
  for (size_t i = 0; i < pseudo_labels.size(); ++i) {
    const int label = pseudo_labels[i];
    weights[i] = label == kNoLabel ? 1.0 / n
                                   : static_cast<double>(labelled) / n / raw_total *
                                         std::pow(static_cast<double>(per_class[label]), -exponent);
  }
  return weights;
}

std::vector<float> synthesize_outliers(const std::vector<float>& images, size_t n,
                                       const data::TensorShape& shape, size_t count,
                                       uint64_t seed) {
  const int height = shape.height, width = shape.width;
  const size_t plane = static_cast<size_t>(height) * width;
  const size_t numel = static_cast<size_t>(shape.numel());
  if (n < 2 || images.size() < n * numel) {
    fail_expected("outlier synthesis", "at least 2 images", std::to_string(n));
  }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  std::vector<float> out(count * numel);
  for (size_t o = 0; o < count; ++o) {
    const float* first = images.data() + pick(rng) * numel;
    const float* second = images.data() + pick(rng) * numel;
    const int kind = static_cast<int>(rng() % 4);
    const int hh = height / 2, hw = width / 2;
    for (int ch = 0; ch < shape.channels; ++ch) {
      const float* a = first + static_cast<size_t>(ch) * plane;
      const float* b = second + static_cast<size_t>(ch) * plane;
      float* dst = out.data() + o * numel + static_cast<size_t>(ch) * plane;
      for (int r = 0; r < height; ++r) {
        for (int c = 0; c < width; ++c) {
          float value;
          if (kind == 0) {
            value = (c < hw ? a : b)[r * width + c];
          } else if (kind == 1) {
            value = (r < hh ? a : b)[r * width + c];
          } else if (kind == 2) {  // quadrants rotated: each takes the next quadrant's pixels
            int qr = r < hh ? 0 : 1, qc = c < hw ? 0 : 1;
            int sr = (r + (qc ? hh : 0)) % height, sc = (c + (qr ? 0 : hw)) % width;
            value = a[sr * width + sc];
          } else {
            value = 0.5f * (a[r * width + c] + b[r * width + c]);
          }
          dst[r * width + c] = value;
        }
      }
    }
  }
  return out;
}

std::vector<int> pseudo_label(const std::vector<float>& fm_embeddings,
                              const models::TextPool& pool) {
  const int d = pool.dim();
  const int k = static_cast<int>(pool.size());
  if (k == 0) throw Error("pseudo-labelling: expected a non-empty pool");
  if (fm_embeddings.size() % static_cast<size_t>(d) != 0) {
    fail_expected("pseudo-labelling", "embeddings of dim " + std::to_string(d),
                  std::to_string(fm_embeddings.size()) + " floats");
  }
  size_t n = fm_embeddings.size() / static_cast<size_t>(d);
  std::vector<float> sims(n * static_cast<size_t>(k));
  route::cosine_similarities(fm_embeddings.data(), n, pool.data(), k, d, sims.data());
  std::vector<int> labels(n);
  for (size_t i = 0; i < n; ++i) labels[i] = route::top2(sims.data() + i * k, k).first;
  return labels;
}

double mse_loss(const float* student, const float* fm, size_t n, int d) {
  auto s = view(student, {static_cast<int64_t>(n), d});
  return mse_term(s, view(fm, {static_cast<int64_t>(n), d})).item<double>();
}

double info_nce_loss(const float* student, size_t n, int d, const float* pool, int k,
                     const int* labels, double temperature) {
  std::vector<int64_t> l(labels, labels + n);
  return info_nce_term(view(student, {static_cast<int64_t>(n), d}), view(pool, {k, d}),
                       torch::tensor(l), temperature)
      .item<double>();
}

DistillResult distill(const DistillSet& set, const models::TextPool& pool,
                      const DistillParams& params) {
  const int d = pool.dim();
  const auto n = static_cast<int64_t>(set.size());
  if (n == 0) throw Error("distillation: expected uploaded samples, got none");
  models::Net net;
  if (!params.warm_start.empty()) {
    auto previous = models::load_student(params.warm_start);
    net = models::clone_student_net(previous);
    if (net.arch != params.arch || net.embedding_dim != d) {
      fail_expected("warm start '" + params.warm_start + "'",
                    params.arch + " with dim " + std::to_string(d),
                    net.arch + " with dim " + std::to_string(net.embedding_dim));
    }
    data::check_same_spec(net.spec, "warm start '" + params.warm_start + "'", set.spec,
                          "the uploaded samples");
  } else {
    torch::manual_seed(params.seed);
    net = models::make_edge_net(params.arch, set.spec, d);
  }
  const auto& shape = net.spec.shape;
  const auto numel = shape.numel();
  if (set.images.size() != static_cast<size_t>(n * numel) ||
      set.fm_embeddings.size() != static_cast<size_t>(n * d)) {
    fail_expected("distillation set", std::to_string(n) + " images of " + std::to_string(numel) +
                                          " values and embeddings of dim " + std::to_string(d),
                  std::to_string(set.images.size()) + " image values, " +
                      std::to_string(set.fm_embeddings.size()) + " embedding values");
  }
  torch::manual_seed(params.seed + 1);

  auto images = view(set.images.data(), {n, shape.channels, shape.height, shape.width});
  auto targets = view(set.fm_embeddings.data(), {n, d});
  auto labels = torch::tensor(std::vector<int64_t>(set.pseudo_labels.begin(), set.pseudo_labels.end()));
  auto pool_t = view(pool.data(), {static_cast<int64_t>(pool.size()), d});

  torch::Tensor draw_weights;  // defined with a class balance above 0
  if (params.balance > 0.0) {
    const auto w = class_balanced_weights(set.pseudo_labels, params.balance);
    draw_weights = torch::tensor(w, torch::kDouble);
  }

  torch::optim::AdamW optimizer(net.body->parameters(),
                                torch::optim::AdamWOptions(params.learning_rate)
                                    .weight_decay(params.weight_decay));
  const int64_t steps_per_epoch = (n + params.batch_size - 1) / params.batch_size;
  const int64_t total_steps = steps_per_epoch * params.epochs;
  Progress progress("distill " + params.arch, total_steps * params.batch_size, "img");
  auto started = std::chrono::steady_clock::now();
  DistillResult result;
  double mse_avg = 0, nce_avg = 0;
  int64_t step = 0;
  net.body->train();
  for (int epoch = 1; epoch <= params.epochs; ++epoch) {
    auto order = draw_weights.defined() ? torch::multinomial(draw_weights, n, /*replacement=*/true)
                                        : torch::randperm(n);
    for (int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      double lr = params.learning_rate * 0.5 * (1 + std::cos(M_PI * step / total_steps));
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      auto index = order.slice(0, s * params.batch_size,
                               std::min<int64_t>((s + 1) * params.batch_size, n));
      auto x = images.index_select(0, index);
      if (params.augment) x = models::augment(x, params.max_shift, set.spec.modality);
      auto student = models::embed_tensor(net, x);
      auto mse = mse_term(student, targets.index_select(0, index));
      auto nce = info_nce_term(student, pool_t, labels.index_select(0, index), params.temperature);
      auto loss = mse + params.lambda * nce;
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      double m = mse.item<double>(), c = nce.item<double>();
      mse_avg = step == 0 ? m : 0.95 * mse_avg + 0.05 * m;
      nce_avg = step == 0 ? c : 0.95 * nce_avg + 0.05 * c;
      progress.update((step + 1) * params.batch_size,
                      {{"epoch", std::to_string(epoch) + "/" + std::to_string(params.epochs)},
                       {"mse", std::to_string(mse_avg).substr(0, 6)},
                       {"infonce", std::to_string(nce_avg).substr(0, 6)}});
      if (params.on_step) params.on_step(step + 1, total_steps);
    }
  }
  progress.finish({{"mse", std::to_string(mse_avg).substr(0, 6)},
                   {"infonce", std::to_string(nce_avg).substr(0, 6)}});
  net.body->eval();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.final_mse = mse_avg;
  result.final_info_nce = nce_avg;
  result.final_loss = mse_avg + params.lambda * nce_avg;
  result.parameters = models::count_parameters(*net.body);

  result.summary = {{"arch", params.arch}, {"epochs", params.epochs},      {"batch_size", params.batch_size},
                     {"learning_rate", params.learning_rate}, {"lambda", params.lambda},
                     {"temperature", params.temperature},     {"samples", n},
                     {"balance", params.balance},
                     {"warm_start", params.warm_start},       {"seconds", result.seconds},
                     {"final_mse", mse_avg},                  {"final_info_nce", nce_avg}};
  result.student = std::make_shared<models::TorchEncoder>(std::move(net));
  return result;
}

}  // namespace edgefm::customize
