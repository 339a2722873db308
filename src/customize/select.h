#pragma once
// Which unlabeled samples go to the cloud for customization. Torch-free.
//
// Offline (a pool of samples at once): select_for_upload with one of three strategies
//   random            a seeded uniform sample
//   lowest_margin     the least confident samples (lowest score; the margin by default)
//   margin_diversity  candidates = the candidate_factor * budget lowest-score samples, then
//                     k-center greedy on their embeddings, seeded by the lowest-score sample,
//                     so near-duplicates of one confusion do not eat the budget
// Streaming (on the edge): UploadSelector keeps samples whose score falls below an
// upload threshold, closes a small window of them at a time, picks from it by the same
// strategies (k-center against the recently uploaded embeddings) and pays for each upload from
// two token buckets: samples per minute and kbit/s of uplink, so uploads never starve cloud
// queries.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace edgefm::customize {

enum class SelectionStrategy { random, lowest_margin, margin_diversity };

std::vector<std::string> selection_strategy_names();  // random, lowest_margin, margin_diversity
const char* selection_strategy_name(SelectionStrategy strategy);
SelectionStrategy parse_selection_strategy(const std::string& name);  // Error lists the names

// An upload budget: a fraction of the samples or a count of them.
struct UploadBudget {
  bool is_fraction = true;
  double value = 0.2;  // the fraction in [0, 1], or the count

  static UploadBudget fraction(double f);  // throws Error outside [0, 1]
  static UploadBudget count(size_t n);
  // "20%" and "0.2" are fractions (a number with a '.' or a '%'); "500" is a count; "1" is one
  // sample and "1.0" all of them. Throws Error on anything else.
  static UploadBudget parse(const std::string& text);
  // Samples out of `total`: floor(fraction * total), or min(count, total).
  size_t resolve(size_t total) const;
  std::string to_string() const;  // "20%" / "500"
};

struct SelectionParams {
  size_t candidate_factor = 4;  // margin_diversity: candidates per budgeted sample
};

// Picks min(budget, n) sample indices, in the order the strategy chose them. scores (n): higher
// = more confident. embeddings: n x d, read only by margin_diversity (nullptr is fine for the
// others; Error when margin_diversity gets none). Ties in score keep the lower index first.
// The same seed gives the same selection.
std::vector<size_t> select_for_upload(SelectionStrategy strategy, std::span<const float> scores,
                                      const float* embeddings, int d, size_t budget,
                                      uint64_t seed, const SelectionParams& params = {});

// Greedy k-center: picks up to `count` of `candidates` (row indices into embeddings, n x d),
// each the candidate farthest (Euclidean) from the rows picked so far and from `centers`
// (num_centers x d, may be none). Without centres the first pick is candidates[0]. Stops early
// when the farthest remaining candidate is closer than min_distance. Ties: earlier candidate.
std::vector<size_t> k_center_greedy(const float* embeddings, int d,
                                    std::span<const size_t> candidates, size_t count,
                                    const float* centers = nullptr, size_t num_centers = 0,
                                    float min_distance = 0.0f);

// Tokens refill at `rate_per_s` up to `capacity`; the bucket starts full. A take succeeds when
// the tokens cover it, or when the bucket is full (so an item larger than the capacity still
// passes, leaving a debt): over any span T at most capacity + rate * T + one item is taken.
class TokenBucket {
 public:
  TokenBucket(double rate_per_s, double capacity);
  double available(double now_s);
  bool can_take(double amount, double now_s);
  bool try_take(double amount, double now_s);

 private:
  void refill(double now_s);
  double rate_;
  double capacity_;
  double tokens_;
  double last_s_ = 0.0;
  bool started_ = false;
};

struct UploadSelectorParams {
  SelectionStrategy strategy = SelectionStrategy::margin_diversity;
  float upload_threshold = 0.1f;     // candidates: score < upload_threshold
  double samples_per_minute = 60.0;  // upload budget in samples (> 0)
  double uplink_kbps = 64.0;         // upload budget in kbit/s of uplink (> 0)
  double burst_seconds = 10.0;       // each bucket holds this many seconds of its budget
  size_t window_size = 32;           // a selection round closes at this many candidates,
  double window_seconds = 5.0;       // or this long after its first candidate
  size_t memory = 64;                // recent uploads kept as k-center centres
  float min_distance = 0.0f;         // margin_diversity: skip candidates this close to a centre
  uint64_t seed = 1;                 // random strategy
};

class UploadSelector {
 public:
  // Throws Error on a non-positive budget, an empty window or dim <= 0.
  UploadSelector(const UploadSelectorParams& params, int dim);
  UploadSelector(const UploadSelector&) = delete;
  UploadSelector& operator=(const UploadSelector&) = delete;

  // One sample seen at now_s (seconds, non-decreasing) with its score, embedding (dim floats)
  // and upload size. Returns the ids chosen for upload now: usually none, the window's picks
  // when this sample closes a window (by size, or by age before it is added).
  std::vector<uint64_t> offer(uint64_t id, float score, const float* embedding, size_t bytes,
                              double now_s);
  // Closes the current window now (e.g. at the end of a stream).
  std::vector<uint64_t> flush(double now_s);
  // Whether the sample is a candidate in the open window.
  bool in_window(uint64_t id) const;
  // Changes which scores are candidates from the next offer on (e.g. +inf: every sample, while
  // the edge looks for what changed after a drift).
  void set_upload_threshold(float threshold) { params_.upload_threshold = threshold; }
  float upload_threshold() const { return params_.upload_threshold; }

  struct Stats {
    size_t offered = 0;
    size_t candidates = 0;      // below the upload threshold
    size_t uploaded = 0;
    uint64_t uploaded_bytes = 0;
    size_t skipped_budget = 0;  // window picks refused by a token bucket
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Candidate {
    uint64_t id;
    float score;
    size_t bytes;
  };
  std::vector<uint64_t> close_window(double now_s);
  std::vector<size_t> window_order();

  UploadSelectorParams params_;
  int dim_;
  TokenBucket samples_;
  TokenBucket bytes_;
  std::vector<Candidate> window_;
  std::vector<float> window_embeddings_;
  double window_start_s_ = 0.0;
  std::deque<std::vector<float>> recent_;  // embeddings of the latest uploads
  std::mt19937_64 rng_;
  Stats stats_;
};

}  // namespace edgefm::customize
