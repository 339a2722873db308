#include "route/scores.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <set>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "common/error.h"
#include "route/similarity.h"

namespace edgefm::route {
namespace {

static_assert(std::endian::native == std::endian::little,
              "fitted score state is stored as little-endian float32");

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Fitted state (thousands of floats) travels as base64 of little-endian float32: exact and
// about a third of the size of decimal JSON numbers.
std::string floats_to_base64(const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) |
                       (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint32_t(uint8_t(bytes[i + 2]));
    out += kBase64Alphabet[(v >> 18) & 63];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += kBase64Alphabet[(v >> 6) & 63];
    out += kBase64Alphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kBase64Alphabet[(v >> 18) & 63];
    out += kBase64Alphabet[(v >> 12) & 63];
    out += rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::vector<float> base64_to_floats(const std::string& text, const std::string& context) {
  int lookup[256];
  std::fill(std::begin(lookup), std::end(lookup), -1);
  for (int c = 0; c < 64; ++c) lookup[uint8_t(kBase64Alphabet[c])] = c;
  if (text.size() % 4 != 0) {
    fail_expected(context, "base64 text of a length divisible by 4",
                  std::to_string(text.size()) + " characters");
  }
  std::string bytes;
  bytes.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = text[i + j];
      if (c == '=' && i + 4 == text.size() && j >= 2) {
        v[j] = 0;
        ++pad;
      } else if (pad > 0 || (v[j] = lookup[uint8_t(c)]) < 0) {
        fail_expected(context, "base64 text", "the character '" + std::string(1, c) + "'");
      }
    }
    const uint32_t word =
        (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    bytes += char((word >> 16) & 255);
    if (pad < 2) bytes += char((word >> 8) & 255);
    if (pad < 1) bytes += char(word & 255);
  }
  if (bytes.size() % sizeof(float) != 0) {
    fail_expected(context, "a whole number of float32 values",
                  std::to_string(bytes.size()) + " bytes");
  }
  std::vector<float> values(bytes.size() / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

void check_keys(const json& params, const std::set<std::string>& allowed,
                const std::string& context) {
  if (params.is_null()) return;  // no parameters: the defaults
  if (!params.is_object())
    fail_expected(context, "a JSON object of parameters", params.type_name());
  for (const auto& [key, value] : params.items()) {
    if (allowed.count(key) == 0) {
      std::string known;
      for (const auto& name : allowed) known += (known.empty() ? "" : ", ") + name;
      fail_expected(context, "parameters among {" + known + "}", "'" + key + "'");
    }
  }
}

float check_temperature(float temperature, const std::string& context) {
  if (!(temperature > 0.0f) || !std::isfinite(temperature)) {
    fail_expected(context, "a temperature > 0", std::to_string(temperature));
  }
  return temperature;
}

// log of sum_j exp((s_j - s_max) / T), and s_max: the stable softmax normaliser.
struct SoftmaxNorm {
  float max;
  float log_z;
};

SoftmaxNorm softmax_norm(const float* sims, int k, float temperature) {
  float m = sims[0];
  for (int j = 1; j < k; ++j) m = std::max(m, sims[j]);
  const float inv_t = 1.0f / temperature;
  float z = 0.0f;
  for (int j = 0; j < k; ++j) z += std::exp((sims[j] - m) * inv_t);
  return {m, std::log(z)};
}

void check_k(int k, const char* what) {
  if (k < 1) fail_expected(what, "at least one similarity", std::to_string(k));
}

class MarginScore final : public ConfidenceScore {
 public:
  std::string name() const override { return "margin"; }
  float operator()(const float* sims, int k, const float*, int) const override {
    return top2(sims, k).margin();
  }
  json params() const override { return json::object(); }
};

class MaxCosineScore final : public ConfidenceScore {
 public:
  std::string name() const override { return "max_cosine"; }
  float operator()(const float* sims, int k, const float*, int) const override {
    return top2(sims, k).sim1;
  }
  json params() const override { return json::object(); }
};

using TemperatureFn = float (*)(const float*, int, float);

class TemperatureScore final : public ConfidenceScore {
 public:
  TemperatureScore(std::string name, TemperatureFn fn, float temperature)
      : name_(std::move(name)), fn_(fn), temperature_(check_temperature(temperature, name_)) {}
  std::string name() const override { return name_; }
  float operator()(const float* sims, int k, const float*, int) const override {
    return fn_(sims, k, temperature_);
  }
  json params() const override { return {{"temperature", temperature_}}; }

 private:
  std::string name_;
  TemperatureFn fn_;
  float temperature_;
};

std::vector<float> normalized_rows(std::vector<float> rows, int dim, const std::string& context) {
  if (dim <= 0) fail_expected(context, "dim > 0", std::to_string(dim));
  if (rows.size() % static_cast<size_t>(dim) != 0) {
    fail_expected(context, "a multiple of dim = " + std::to_string(dim) + " floats",
                  std::to_string(rows.size()));
  }
  l2_normalize_rows(rows.data(), rows.size() / dim, dim);
  return rows;
}

// 1 / |v| (0 for a zero vector), so a query need not be normalised by the caller.
float inverse_norm(const float* v, int d) {
  const float norm = std::sqrt(dot(v, v, d));
  return norm > 0.0f ? 1.0f / norm : 0.0f;
}

void check_fit_label(const char* what, size_t row, int label, int num_classes) {
  if (label < 0 || label >= num_classes) {
    fail_expected(std::string(what) + " label of row " + std::to_string(row),
                  "a class in [0, " + std::to_string(num_classes) + ")", std::to_string(label));
  }
}

// Per-call scratch floats: on the stack up to N, on the heap beyond (scores run per sample on
// several threads, so no shared buffer).
template <int N>
class Scratch {
 public:
  explicit Scratch(int n) {
    if (n > N) heap_.resize(static_cast<size_t>(n));
  }
  float* data() { return heap_.empty() ? stack_ : heap_.data(); }

 private:
  float stack_[N];
  std::vector<float> heap_;
};

void check_embedding(const float* embedding, int d, int dim, const char* what) {
  if (embedding == nullptr) fail_expected(what, "an embedding", "none");
  if (d != dim) fail_expected(what, "embedding dim " + std::to_string(dim), std::to_string(d));
}

}  // namespace

void ConfidenceScore::score_batch(const float* sims, size_t n, int k, const float* embeddings,
                                  int d, float* out) const {
  for (size_t i = 0; i < n; ++i) {
    out[i] = (*this)(sims ? sims + i * static_cast<size_t>(k) : nullptr, k,
                     embeddings ? embeddings + i * static_cast<size_t>(d) : nullptr, d);
  }
}

float max_softmax(const float* sims, int k, float temperature) {
  check_k(k, "max_softmax");
  // The largest probability is exp(0) / Z.
  return std::exp(-softmax_norm(sims, k, temperature).log_z);
}

float negative_entropy(const float* sims, int k, float temperature) {
  check_k(k, "negative_entropy");
  const SoftmaxNorm norm = softmax_norm(sims, k, temperature);
  const float inv_t = 1.0f / temperature;
  // -H = sum_j p_j log p_j with log p_j = z_j - log Z, z_j = (s_j - s_max) / T.
  float sum = 0.0f;
  for (int j = 0; j < k; ++j) {
    const float log_p = (sims[j] - norm.max) * inv_t - norm.log_z;
    sum += std::exp(log_p) * log_p;
  }
  return sum;
}

float energy(const float* sims, int k, float temperature) {
  check_k(k, "energy");
  const SoftmaxNorm norm = softmax_norm(sims, k, temperature);
  return norm.max + temperature * norm.log_z;
}

// ---- knn ----

KnnScore::KnnScore(int k, int dim, std::vector<float> bank)
    : k_(k), dim_(dim), bank_(normalized_rows(std::move(bank), dim, "knn bank")) {
  if (k_ < 1) fail_expected("knn", "k >= 1", std::to_string(k_));
  if (bank_rows() < static_cast<size_t>(k_)) {
    fail_expected("knn bank", "at least k = " + std::to_string(k_) + " rows",
                  std::to_string(bank_rows()));
  }
}

std::unique_ptr<KnnScore> KnnScore::fit(const float* embeddings, size_t n, int d,
                                        const KnnFitParams& params) {
  if (d <= 0) fail_expected("knn fit", "d > 0", std::to_string(d));
  std::vector<size_t> rows(n);
  for (size_t i = 0; i < n; ++i) rows[i] = i;
  if (n > params.max_bank) {
    std::mt19937_64 rng(params.seed);
    for (size_t i = 0; i < params.max_bank; ++i) {  // partial Fisher-Yates
      const size_t j = i + rng() % (n - i);
      std::swap(rows[i], rows[j]);
    }
    rows.resize(params.max_bank);
    std::sort(rows.begin(), rows.end());
  }
  std::vector<float> bank(rows.size() * static_cast<size_t>(d));
  for (size_t r = 0; r < rows.size(); ++r) {
    std::copy_n(embeddings + rows[r] * static_cast<size_t>(d), d, bank.data() + r * d);
  }
  return std::make_unique<KnnScore>(params.k, d, std::move(bank));
}

float KnnScore::operator()(const float*, int, const float* embedding, int d) const {
  check_embedding(embedding, d, dim_, "knn score");
  const float inv = inverse_norm(embedding, d);
  // The k largest cosines so far, descending; k is small, so insertion beats a heap.
  Scratch<64> scratch(k_);
  float* best = scratch.data();
  int filled = 0;
  const size_t rows = bank_rows();
  for (size_t r = 0; r < rows; ++r) {
    const float s = dot(embedding, bank_.data() + r * dim_, d) * inv;
    if (filled == k_ && s <= best[k_ - 1]) continue;
    int pos = filled < k_ ? filled++ : k_ - 1;
    while (pos > 0 && best[pos - 1] < s) {
      best[pos] = best[pos - 1];
      --pos;
    }
    best[pos] = s;
  }
  return best[k_ - 1];
}

json KnnScore::params() const {
  return {{"k", k_}, {"dim", dim_}, {"bank", floats_to_base64(bank_)}};
}

// ---- proto ----

ProtoScore::ProtoScore(int dim, std::vector<int> classes, std::vector<float> prototypes)
    : dim_(dim),
      classes_(std::move(classes)),
      prototypes_(normalized_rows(std::move(prototypes), dim, "proto prototypes")) {
  if (classes_.empty()) fail_expected("proto", "at least one prototype", "none");
  if (prototypes_.size() != classes_.size() * static_cast<size_t>(dim_)) {
    fail_expected("proto",
                  std::to_string(classes_.size()) + " prototypes of dim " + std::to_string(dim_),
                  std::to_string(prototypes_.size()) + " floats");
  }
}

std::unique_ptr<ProtoScore> ProtoScore::fit(const float* embeddings, const int* labels, size_t n,
                                            int d, int num_classes) {
  if (n == 0) fail_expected("proto fit", "at least one embedding", "none");
  if (d <= 0 || num_classes <= 0) {
    fail_expected("proto fit", "d > 0 and num_classes > 0",
                  "d = " + std::to_string(d) + ", num_classes = " + std::to_string(num_classes));
  }
  std::vector<double> sums(static_cast<size_t>(num_classes) * d, 0.0);
  std::vector<size_t> counts(num_classes, 0);
  for (size_t i = 0; i < n; ++i) {
    const int c = labels[i];
    check_fit_label("proto fit", i, c, num_classes);
    const float* e = embeddings + i * static_cast<size_t>(d);
    const float inv = inverse_norm(e, d);
    for (int t = 0; t < d; ++t) sums[static_cast<size_t>(c) * d + t] += double(e[t]) * inv;
    ++counts[c];
  }
  std::vector<int> classes;
  std::vector<float> prototypes;
  for (int c = 0; c < num_classes; ++c) {
    if (counts[c] == 0) continue;
    classes.push_back(c);
    for (int t = 0; t < d; ++t) {
      prototypes.push_back(static_cast<float>(sums[static_cast<size_t>(c) * d + t] / counts[c]));
    }
  }
  return std::make_unique<ProtoScore>(d, std::move(classes), std::move(prototypes));
}

float ProtoScore::operator()(const float*, int, const float* embedding, int d) const {
  check_embedding(embedding, d, dim_, "proto score");
  const float inv = inverse_norm(embedding, d);
  float best = -2.0f;
  for (size_t c = 0; c < classes_.size(); ++c) {
    best = std::max(best, dot(embedding, prototypes_.data() + c * dim_, d) * inv);
  }
  return best;
}

json ProtoScore::params() const {
  return {{"dim", dim_}, {"classes", classes_}, {"prototypes", floats_to_base64(prototypes_)}};
}

// ---- mahalanobis ----

MahalanobisScore::MahalanobisScore(int dim, std::vector<int> classes, std::vector<float> whitening,
                                   std::vector<float> means)
    : dim_(dim),
      classes_(std::move(classes)),
      whitening_(std::move(whitening)),
      means_(std::move(means)) {
  if (dim_ <= 0) fail_expected("mahalanobis", "dim > 0", std::to_string(dim_));
  if (classes_.empty()) fail_expected("mahalanobis", "at least one class mean", "none");
  const size_t d = static_cast<size_t>(dim_);
  if (whitening_.size() != d * d) {
    fail_expected("mahalanobis whitening", std::to_string(d * d) + " floats (dim x dim)",
                  std::to_string(whitening_.size()));
  }
  if (means_.size() != classes_.size() * d) {
    fail_expected("mahalanobis means",
                  std::to_string(classes_.size()) + " means of dim " + std::to_string(dim_),
                  std::to_string(means_.size()) + " floats");
  }
}

std::unique_ptr<MahalanobisScore> MahalanobisScore::fit(const float* embeddings, const int* labels,
                                                        size_t n, int d, int num_classes,
                                                        const MahalanobisFitParams& params) {
  if (d <= 0 || num_classes <= 0) {
    fail_expected("mahalanobis fit", "d > 0 and num_classes > 0",
                  "d = " + std::to_string(d) + ", num_classes = " + std::to_string(num_classes));
  }
  if (!(params.shrinkage >= 0.0 && params.shrinkage < 1.0)) {
    fail_expected("mahalanobis shrinkage", "a value in [0, 1)", std::to_string(params.shrinkage));
  }
  if (labels == nullptr) fail_expected("mahalanobis fit", "(pseudo-)labels", "none");
  using Matrix = Eigen::MatrixXd;
  Matrix x(static_cast<Eigen::Index>(n), d);
  std::vector<size_t> counts(num_classes, 0);
  for (size_t i = 0; i < n; ++i) {
    check_fit_label("mahalanobis fit", i, labels[i], num_classes);
    const float* e = embeddings + i * static_cast<size_t>(d);
    const float inv = inverse_norm(e, d);
    for (int t = 0; t < d; ++t) x(static_cast<Eigen::Index>(i), t) = double(e[t]) * inv;
    ++counts[labels[i]];
  }
  std::vector<int> classes;
  Matrix means(num_classes, d);
  means.setZero();
  for (size_t i = 0; i < n; ++i) means.row(labels[i]) += x.row(static_cast<Eigen::Index>(i));
  for (int c = 0; c < num_classes; ++c) {
    if (counts[c] < params.min_per_class) continue;
    classes.push_back(c);
    means.row(c) /= static_cast<double>(counts[c]);
  }
  if (classes.empty()) {
    fail_expected("mahalanobis fit",
                  "a class with at least " + std::to_string(params.min_per_class) + " rows", "none");
  }
  // Pooled within-class covariance of the rows whose class has a mean, shrunk to the identity.
  Matrix cov = Matrix::Zero(d, d);
  size_t used = 0;
  for (size_t i = 0; i < n; ++i) {
    if (counts[labels[i]] < params.min_per_class) continue;
    Eigen::RowVectorXd centred = x.row(static_cast<Eigen::Index>(i)) - means.row(labels[i]);
    cov.noalias() += centred.transpose() * centred;
    ++used;
  }
  cov /= static_cast<double>(used);
  const double scale = std::max(cov.trace() / d, 1e-12);
  cov = (1.0 - params.shrinkage) * cov + params.shrinkage * scale * Matrix::Identity(d, d);
  Eigen::LLT<Matrix> llt(cov);
  if (llt.info() != Eigen::Success) {
    fail_expected("mahalanobis fit", "a positive definite covariance (raise shrinkage)",
                  "a singular one");
  }
  const Matrix whitening = llt.matrixL().solve(Matrix::Identity(d, d));  // L^-1, lower
  std::vector<float> w(static_cast<size_t>(d) * d);
  for (int r = 0; r < d; ++r) {
    for (int c = 0; c < d; ++c) w[static_cast<size_t>(r) * d + c] = static_cast<float>(whitening(r, c));
  }
  std::vector<float> whitened_means;
  for (int c : classes) {
    Eigen::VectorXd m = whitening * means.row(c).transpose();
    for (int t = 0; t < d; ++t) whitened_means.push_back(static_cast<float>(m(t)));
  }
  return std::make_unique<MahalanobisScore>(d, std::move(classes), std::move(w),
                                            std::move(whitened_means));
}

float MahalanobisScore::operator()(const float*, int, const float* embedding, int d) const {
  check_embedding(embedding, d, dim_, "mahalanobis score");
  const float inv = inverse_norm(embedding, d);
  Scratch<512> scratch(d);
  float* z = scratch.data();
  // z = W e (W lower triangular: row r reads e[0..r]).
  for (int r = 0; r < d; ++r) z[r] = dot(whitening_.data() + static_cast<size_t>(r) * d, embedding, r + 1) * inv;
  float best = std::numeric_limits<float>::infinity();
  for (size_t c = 0; c < classes_.size(); ++c) {
    const float* m = means_.data() + c * static_cast<size_t>(d);
    float dist = 0.0f;
    for (int t = 0; t < d; ++t) dist += (z[t] - m[t]) * (z[t] - m[t]);
    best = std::min(best, dist);
  }
  return -best;
}

json MahalanobisScore::params() const {
  return {{"dim", dim_},
          {"classes", classes_},
          {"whitening", floats_to_base64(whitening_)},
          {"means", floats_to_base64(means_)}};
}

// ---- hybrid ----

QuantileMap QuantileMap::fit(std::vector<float> values, size_t count) {
  if (values.size() < 2) fail_expected("quantile fit", "at least 2 values", std::to_string(values.size()));
  std::sort(values.begin(), values.end());
  count = std::max<size_t>(2, std::min(count, values.size()));
  std::vector<float> quantiles(count);
  for (size_t i = 0; i < count; ++i) {
    quantiles[i] = values[i * (values.size() - 1) / (count - 1)];
  }
  return QuantileMap(std::move(quantiles));
}

QuantileMap::QuantileMap(std::vector<float> quantiles) : quantiles_(std::move(quantiles)) {
  if (quantiles_.size() < 2) {
    fail_expected("quantile map", "at least 2 quantiles", std::to_string(quantiles_.size()));
  }
  if (!std::is_sorted(quantiles_.begin(), quantiles_.end()) ||
      std::any_of(quantiles_.begin(), quantiles_.end(), [](float q) { return !std::isfinite(q); })) {
    fail_expected("quantile map", "finite quantiles in ascending order", "others");
  }
}

float QuantileMap::operator()(float value) const {
  if (!(value > quantiles_.front())) return 0.0f;
  if (!(value < quantiles_.back())) return 1.0f;
  const size_t hi = static_cast<size_t>(
      std::upper_bound(quantiles_.begin(), quantiles_.end(), value) - quantiles_.begin());
  const size_t lo = hi - 1;
  const float span = quantiles_[hi] - quantiles_[lo];
  const float within = span > 0.0f ? (value - quantiles_[lo]) / span : 0.0f;
  return (static_cast<float>(lo) + within) / static_cast<float>(quantiles_.size() - 1);
}

HybridScore::HybridScore(QuantileMap margin, QuantileMap mahalanobis_map,
                         std::unique_ptr<MahalanobisScore> mahalanobis)
    : margin_(std::move(margin)),
      mahalanobis_map_(std::move(mahalanobis_map)),
      mahalanobis_(std::move(mahalanobis)) {
  if (!mahalanobis_) fail_expected("hybrid score", "a mahalanobis score", "none");
}

std::unique_ptr<HybridScore> HybridScore::fit(const float* embeddings, const float* sims,
                                              const int* labels, size_t n, int d, int num_classes,
                                              const MahalanobisFitParams& params) {
  if (sims == nullptr) fail_expected("hybrid fit", "the fit rows' similarities to the pool", "none");
  auto maha = MahalanobisScore::fit(embeddings, labels, n, d, num_classes, params);
  std::vector<float> margins(n), distances(n);
  for (size_t i = 0; i < n; ++i) {
    margins[i] = top2(sims + i * static_cast<size_t>(num_classes), num_classes).margin();
    distances[i] = (*maha)(nullptr, 0, embeddings + i * static_cast<size_t>(d), d);
  }
  return std::make_unique<HybridScore>(QuantileMap::fit(std::move(margins)),
                                       QuantileMap::fit(std::move(distances)), std::move(maha));
}

float HybridScore::operator()(const float* sims, int k, const float* embedding, int d) const {
  if (sims == nullptr) fail_expected("hybrid score", "similarities", "none");
  check_k(k, "hybrid score");
  const float typical = mahalanobis_map_((*mahalanobis_)(nullptr, 0, embedding, d));
  return std::min(margin_(top2(sims, k).margin()), typical);
}

json HybridScore::params() const {
  return {{"margin_quantiles", margin_.quantiles()},
          {"mahalanobis_quantiles", mahalanobis_map_.quantiles()},
          {"mahalanobis", mahalanobis_->params()}};
}

// ---- factory ----

std::vector<std::string> score_names() {
  return {"margin", "max_cosine", "max_softmax", "entropy",    "energy",
          "mcm",    "knn",        "proto",       "mahalanobis", "hybrid"};
}

bool score_needs_fit(const std::string& name) {
  return name == "knn" || name == "proto" || name == "mahalanobis" || name == "hybrid";
}

namespace {

std::string known_names() {
  std::string out;
  for (const auto& n : score_names()) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::unique_ptr<MahalanobisScore> make_mahalanobis(const json& params, const std::string& context) {
  check_keys(params, {"dim", "classes", "whitening", "means"}, context);
  if (!params.contains("whitening") || !params.contains("means")) {
    fail_expected(context, "a fitted whitening and means in params (fit it with fit_score)",
                  "none");
  }
  return std::make_unique<MahalanobisScore>(
      json_field<int>(params, "dim", context),
      json_field<std::vector<int>>(params, "classes", context),
      base64_to_floats(json_field<std::string>(params, "whitening", context),
                       context + " whitening"),
      base64_to_floats(json_field<std::string>(params, "means", context), context + " means"));
}

std::unique_ptr<ConfidenceScore> make_temperature_score(const std::string& name,
                                                        const json& params) {
  const std::string context = "score '" + name + "'";
  check_keys(params, {"temperature"}, context);
  TemperatureFn fn = name == "max_softmax" ? &max_softmax
                     : name == "entropy"   ? &negative_entropy
                     : name == "energy"    ? &energy
                                           : &max_softmax;  // mcm
  const float fallback = name == "mcm" ? kDefaultMcmTemperature : kDefaultTemperature;
  const float t =
      params.contains("temperature") ? json_field<float>(params, "temperature", context) : fallback;
  return std::make_unique<TemperatureScore>(name, fn, t);
}

}  // namespace

std::unique_ptr<ConfidenceScore> make_score(const std::string& name, const json& params) {
  const std::string context = "score '" + name + "'";
  if (name == "margin" || name == "max_cosine") {
    check_keys(params, {}, context);
    if (name == "margin") return std::make_unique<MarginScore>();
    return std::make_unique<MaxCosineScore>();
  }
  if (name == "max_softmax" || name == "entropy" || name == "energy" || name == "mcm") {
    return make_temperature_score(name, params);
  }
  if (name == "knn") {
    check_keys(params, {"k", "dim", "bank"}, context);
    if (!params.contains("bank")) {
      fail_expected(context, "a fitted bank in params (fit it with fit_score)", "none");
    }
    return std::make_unique<KnnScore>(
        json_field<int>(params, "k", context), json_field<int>(params, "dim", context),
        base64_to_floats(json_field<std::string>(params, "bank", context), context + " bank"));
  }
  if (name == "proto") {
    check_keys(params, {"dim", "classes", "prototypes"}, context);
    if (!params.contains("prototypes")) {
      fail_expected(context, "fitted prototypes in params (fit it with fit_score)", "none");
    }
    return std::make_unique<ProtoScore>(
        json_field<int>(params, "dim", context),
        json_field<std::vector<int>>(params, "classes", context),
        base64_to_floats(json_field<std::string>(params, "prototypes", context),
                         context + " prototypes"));
  }
  if (name == "mahalanobis") return make_mahalanobis(params, context);
  if (name == "hybrid") {
    check_keys(params, {"margin_quantiles", "mahalanobis_quantiles", "mahalanobis"}, context);
    if (!params.contains("mahalanobis")) {
      fail_expected(context, "fitted quantiles and mahalanobis state (fit it with fit_score)",
                    "none");
    }
    return std::make_unique<HybridScore>(
        QuantileMap(json_field<std::vector<float>>(params, "margin_quantiles", context)),
        QuantileMap(json_field<std::vector<float>>(params, "mahalanobis_quantiles", context)),
        make_mahalanobis(params.at("mahalanobis"), context + " mahalanobis"));
  }
  fail_expected("score name", "one of " + known_names(), "'" + name + "'");
}

std::unique_ptr<ConfidenceScore> fit_score(const std::string& name, const json& params,
                                           const float* embeddings, const int* labels, size_t n,
                                           int d, int num_classes, const float* sims) {
  const std::string context = "fitting score '" + name + "'";
  if (name == "knn") {
    check_keys(params, {"k", "max_bank", "seed"}, context);
    KnnFitParams fit;
    if (params.contains("k")) fit.k = json_field<int>(params, "k", context);
    if (params.contains("max_bank")) fit.max_bank = json_field<size_t>(params, "max_bank", context);
    if (params.contains("seed")) fit.seed = json_field<uint64_t>(params, "seed", context);
    return KnnScore::fit(embeddings, n, d, fit);
  }
  if (name == "proto") {
    check_keys(params, {}, context);
    if (labels == nullptr) fail_expected(context, "(pseudo-)labels", "none");
    return ProtoScore::fit(embeddings, labels, n, d, num_classes);
  }
  if (name == "mahalanobis" || name == "hybrid") {
    check_keys(params, {"shrinkage"}, context);
    MahalanobisFitParams fit;
    if (params.contains("shrinkage")) fit.shrinkage = json_field<double>(params, "shrinkage", context);
    if (name == "hybrid") return HybridScore::fit(embeddings, sims, labels, n, d, num_classes, fit);
    return MahalanobisScore::fit(embeddings, labels, n, d, num_classes, fit);
  }
  return make_score(name, params);
}

json score_to_json(const ConfidenceScore& score) {
  return {{"name", score.name()}, {"params", score.params()}};
}

std::unique_ptr<ConfidenceScore> score_from_json(const json& j, const std::string& context) {
  const auto name = json_field<std::string>(j, "name", context);
  return make_score(name, j.contains("params") ? j.at("params") : json::object());
}

}  // namespace edgefm::route
