#pragma once
// Confidence scores behind one interface: each reads the similarities of a sample to the class
// pool and its embedding, never a model. Higher = more confident = more likely a seen class =
// more likely to stay on the edge. The paper routes on the margin; the others are there because
// a score can separate unseen classes better than the margin does (see DESIGN.md).
//
// Names (make_score / score_names):
//   margin       sim1 - sim2
//   max_cosine   sim1
//   max_softmax  max_j softmax(sims / T)_j          params {"temperature": 0.07}
//   entropy      -H(softmax(sims / T)) (negative entropy, so higher = confident)
//                                                    params {"temperature": 0.07}
//   energy       T * logsumexp(sims / T) (the negative free energy)
//                                                    params {"temperature": 0.07}
//   mcm          max_j softmax(sims / T_mcm)_j, MCM with its own temperature
//                                                    params {"temperature": 1.0}
//   knn          cosine to the k-th nearest of a bank of L2-normalised training embeddings
//                (the OpenOOD KNN score; fitted)     params {"k": 10, "dim", "bank"}
//   proto        max cosine to per-class prototype means of training embeddings (fitted)
//                                                    params {"dim", "classes", "prototypes"}
//   mahalanobis  minus the smallest Mahalanobis distance to a class mean, with one shared,
//                shrunk covariance (Lee et al. 2018) on the L2-normalised embeddings (fitted)
//                                                    params {"dim", "classes", "whitening", "means"}
//   hybrid       min(F_margin(margin), F_maha(mahalanobis)): the lower of the two scores'
//                percentiles among the fit data, so a sample stays on the edge only when it
//                is both unambiguous (margin) and typical of what the student was trained on
//                (mahalanobis) (fitted)              params {"margin_quantiles",
//                                                    "mahalanobis_quantiles", "mahalanobis"}
// Fitted scores carry their state in params(), so a model artifact ships it as
// score_to_json(score) and the edge gets it back with score_from_json.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/json_io.h"

namespace edgefm::route {

class ConfidenceScore {
 public:
  ConfidenceScore() = default;
  ConfidenceScore(const ConfidenceScore&) = delete;
  ConfidenceScore& operator=(const ConfidenceScore&) = delete;
  virtual ~ConfidenceScore() = default;

  virtual std::string name() const = 0;
  // sims: k similarities of one sample to the pool; embedding: its d-dimensional embedding.
  // Scores that ignore one of them accept nullptr there. Safe to call from several threads.
  virtual float operator()(const float* sims, int k, const float* embedding, int d) const = 0;
  // Parameters and fitted state; make_score(name(), params()) rebuilds the same score.
  virtual json params() const = 0;

  // n samples at once: sims n x k, embeddings n x d (or nullptr), out n (caller-owned).
  virtual void score_batch(const float* sims, size_t n, int k, const float* embeddings, int d,
                           float* out) const;
};

// Softmax-family scores share their arithmetic; T > 0 (throws Error otherwise).
float max_softmax(const float* sims, int k, float temperature);
float negative_entropy(const float* sims, int k, float temperature);
float energy(const float* sims, int k, float temperature);

inline constexpr float kDefaultTemperature = 0.07f;  // CLIP/InfoNCE training temperature
inline constexpr float kDefaultMcmTemperature = 1.0f;

// The OpenOOD KNN score on L2-normalised features, as a cosine (same ranking as the negative
// Euclidean distance to the k-th nearest neighbour).
struct KnnFitParams {
  int k = 10;
  size_t max_bank = 2048;  // bank rows kept (a seeded random subset when there are more)
  uint64_t seed = 1;
};

class KnnScore : public ConfidenceScore {
 public:
  // bank: rows x dim; each row is L2-normalised on the way in. Throws Error when rows < k.
  KnnScore(int k, int dim, std::vector<float> bank);
  static std::unique_ptr<KnnScore> fit(const float* embeddings, size_t n, int d,
                                       const KnnFitParams& params = {});

  std::string name() const override { return "knn"; }
  float operator()(const float* sims, int k, const float* embedding, int d) const override;
  json params() const override;

  int k() const { return k_; }
  size_t bank_rows() const { return bank_.size() / static_cast<size_t>(dim_); }

 private:
  int k_;
  int dim_;
  std::vector<float> bank_;
};

// Max cosine to per-class prototypes: the normalised mean of the L2-normalised embeddings of
// each (pseudo-)class.
class ProtoScore : public ConfidenceScore {
 public:
  // prototypes: classes.size() x dim, normalised on the way in.
  ProtoScore(int dim, std::vector<int> classes, std::vector<float> prototypes);
  // labels[i] in [0, num_classes) is the (pseudo-)label of row i; classes without a sample get
  // no prototype. Throws Error when no sample is given or a label is out of range.
  static std::unique_ptr<ProtoScore> fit(const float* embeddings, const int* labels, size_t n,
                                         int d, int num_classes);

  std::string name() const override { return "proto"; }
  float operator()(const float* sims, int k, const float* embedding, int d) const override;
  json params() const override;

  const std::vector<int>& classes() const { return classes_; }

 private:
  int dim_;
  std::vector<int> classes_;
  std::vector<float> prototypes_;
};

// Class-conditional Gaussians with a shared covariance on the L2-normalised embeddings:
// score = -min_c (e - mu_c)^T S^-1 (e - mu_c). S is the pooled within-class covariance shrunk
// towards (trace(S)/d) * I by `shrinkage`; it is stored as its whitening W = L^-1 (S = L L^T)
// and the whitened means W mu_c, so a score costs d*d/2 + classes*d multiply-adds.
struct MahalanobisFitParams {
  double shrinkage = 0.1;   // in [0, 1): weight of the scaled identity in the covariance
  size_t min_per_class = 2;  // classes with fewer rows get no mean
};

class MahalanobisScore : public ConfidenceScore {
 public:
  // whitening: dim x dim, row-major lower triangular; means: classes.size() x dim, whitened.
  MahalanobisScore(int dim, std::vector<int> classes, std::vector<float> whitening,
                   std::vector<float> means);
  // Rows are L2-normalised before the fit. Throws Error when no class has min_per_class rows,
  // a label is out of range or the covariance cannot be factored.
  static std::unique_ptr<MahalanobisScore> fit(const float* embeddings, const int* labels,
                                               size_t n, int d, int num_classes,
                                               const MahalanobisFitParams& params = {});

  std::string name() const override { return "mahalanobis"; }
  float operator()(const float* sims, int k, const float* embedding, int d) const override;
  json params() const override;

  const std::vector<int>& classes() const { return classes_; }

 private:
  int dim_;
  std::vector<int> classes_;
  std::vector<float> whitening_;
  std::vector<float> means_;
};

// The percentile of a value among fitted quantiles (sorted ascending): linear between
// neighbours, 0 below the first, 1 above the last.
class QuantileMap {
 public:
  // values: the fit data's scores (any order); keeps `count` evenly spaced quantiles.
  static QuantileMap fit(std::vector<float> values, size_t count = 256);
  explicit QuantileMap(std::vector<float> quantiles);  // sorted, at least 2 (Error otherwise)
  float operator()(float value) const;
  const std::vector<float>& quantiles() const { return quantiles_; }

 private:
  std::vector<float> quantiles_;
};

class HybridScore : public ConfidenceScore {
 public:
  HybridScore(QuantileMap margin, QuantileMap mahalanobis_map,
              std::unique_ptr<MahalanobisScore> mahalanobis);
  // sims: n x num_classes similarities of the fit rows to the pool (for the margins).
  static std::unique_ptr<HybridScore> fit(const float* embeddings, const float* sims,
                                          const int* labels, size_t n, int d, int num_classes,
                                          const MahalanobisFitParams& params = {});

  std::string name() const override { return "hybrid"; }
  float operator()(const float* sims, int k, const float* embedding, int d) const override;
  json params() const override;

 private:
  QuantileMap margin_;
  QuantileMap mahalanobis_map_;
  std::unique_ptr<MahalanobisScore> mahalanobis_;
};

// Every score name, in the order above.
std::vector<std::string> score_names();
// True for scores that need fit_score (training embeddings) before use.
bool score_needs_fit(const std::string& name);

// Builds a score from its name and parameters (unknown name or parameter: Error naming the
// known ones). Fitted scores need their state in params (as written by params()).
std::unique_ptr<ConfidenceScore> make_score(const std::string& name,
                                            const json& params = json::object());

// Builds any score, fitting the ones that need it on training embeddings (n x d, L2-normalised)
// with their (pseudo-)labels in [0, num_classes); scores that need no fit ignore the data.
// Fit params: knn {"k", "max_bank", "seed"}; mahalanobis, hybrid {"shrinkage"}; temperature scores
// {"temperature"}.
// `sims` (n x num_classes similarities to the pool) is needed by hybrid only.
std::unique_ptr<ConfidenceScore> fit_score(const std::string& name, const json& params,
                                           const float* embeddings, const int* labels, size_t n,
                                           int d, int num_classes, const float* sims = nullptr);

// {"name": ..., "params": {...}} and back.
json score_to_json(const ConfidenceScore& score);
std::unique_ptr<ConfidenceScore> score_from_json(const json& j, const std::string& context);

}  // namespace edgefm::route
