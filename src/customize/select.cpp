#include "customize/select.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace edgefm::customize {
namespace {

// Eight partial sums so the compiler can use vector lanes without -ffast-math.
float squared_distance(const float* a, const float* b, int d) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int t = 0;
  for (; t + 8 <= d; t += 8) {
    for (int l = 0; l < 8; ++l) {
      const float diff = a[t + l] - b[t + l];
      acc[l] += diff * diff;
    }
  }
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; t < d; ++t) sum += (a[t] - b[t]) * (a[t] - b[t]);
  return sum;
}

// Indices 0..n-1 by score ascending (least confident first); NaN counts as most confident.
std::vector<size_t> by_score(std::span<const float> scores) {
  std::vector<size_t> order(scores.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto key = [&](size_t i) {
    return std::isnan(scores[i]) ? std::numeric_limits<float>::infinity() : scores[i];
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  return order;
}

}  // namespace

std::vector<std::string> selection_strategy_names() {
  return {"random", "lowest_margin", "margin_diversity"};
}

const char* selection_strategy_name(SelectionStrategy strategy) {
  switch (strategy) {
    case SelectionStrategy::random:
      return "random";
    case SelectionStrategy::lowest_margin:
      return "lowest_margin";
    case SelectionStrategy::margin_diversity:
      return "margin_diversity";
  }
  return "unknown";
}

SelectionStrategy parse_selection_strategy(const std::string& name) {
  if (name == "random") return SelectionStrategy::random;
  if (name == "lowest_margin") return SelectionStrategy::lowest_margin;
  if (name == "margin_diversity") return SelectionStrategy::margin_diversity;
  fail_expected("selection strategy", "random, lowest_margin or margin_diversity",
                "'" + name + "'");
}

UploadBudget UploadBudget::fraction(double f) {
  if (!(f >= 0.0 && f <= 1.0))
    fail_expected("upload budget fraction", "a value in [0, 1]", std::to_string(f));
  return {true, f};
}

UploadBudget UploadBudget::count(size_t n) { return {false, double(n)}; }

UploadBudget UploadBudget::parse(const std::string& text) {
  const std::string context = "upload budget";
  const std::string expected = "a fraction (\"0.2\", \"20%\") or a count (\"500\")";
  if (text.empty()) fail_expected(context, expected, "nothing");
  const bool percent = text.back() == '%';
  const std::string number = percent ? text.substr(0, text.size() - 1) : text;
  const bool well_formed = !number.empty() &&
                           number.find_first_not_of("0123456789.") == std::string::npos &&
                           std::count(number.begin(), number.end(), '.') <= 1 && number != ".";
  if (!well_formed) fail_expected(context, expected, "'" + text + "'");
  const double value = std::stod(number);
  if (percent) return fraction(value / 100.0);
  if (number.find('.') != std::string::npos) return fraction(value);
  return count(size_t(value));
}

size_t UploadBudget::resolve(size_t total) const {
  if (is_fraction) {
    // The epsilon keeps 0.29 * 100 (28.999999999999996 in binary) at 29.
    return std::min(total, size_t(std::floor(value * double(total) + 1e-9)));
  }
  return std::min(total, size_t(value));
}

std::string UploadBudget::to_string() const {
  if (!is_fraction) return std::to_string(size_t(value));
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g%%", value * 100.0);
  return buffer;
}

std::vector<size_t> k_center_greedy(const float* embeddings, int d,
                                    std::span<const size_t> candidates, size_t count,
                                    const float* centers, size_t num_centers, float min_distance) {
  const size_t m = candidates.size();
  count = std::min(count, m);
  if (count == 0) return {};
  if (embeddings == nullptr || d <= 0) {
    fail_expected("k-center greedy", "embeddings with d > 0", "d = " + std::to_string(d));
  }
  // The candidates' rows side by side: each round streams over them once.
  std::vector<float> rows(m * size_t(d));
  for (size_t i = 0; i < m; ++i) {
    std::copy_n(embeddings + candidates[i] * size_t(d), d, rows.data() + i * size_t(d));
  }
  std::vector<float> nearest(m, std::numeric_limits<float>::infinity());  // squared distances
  for (size_t c = 0; c < num_centers; ++c) {
    const float* center = centers + c * size_t(d);
    for (size_t i = 0; i < m; ++i) {
      nearest[i] = std::min(nearest[i], squared_distance(rows.data() + i * d, center, d));
    }
  }
  std::vector<char> taken(m, 0);
  std::vector<size_t> picked;
  picked.reserve(count);
  const float stop = min_distance * min_distance;
  while (picked.size() < count) {
    size_t best = 0;
    if (picked.empty() && num_centers == 0) {
      best = 0;
    } else {
      float far = -1.0f;
      for (size_t i = 0; i < m; ++i) {
        if (!taken[i] && nearest[i] > far) {
          far = nearest[i];
          best = i;
        }
      }
      if (far < stop) break;
    }
    taken[best] = 1;
    picked.push_back(candidates[best]);
    const float* row = rows.data() + best * d;
    for (size_t i = 0; i < m; ++i) {
      if (!taken[i])
        nearest[i] = std::min(nearest[i], squared_distance(rows.data() + i * d, row, d));
    }
  }
  return picked;
}

std::vector<size_t> select_for_upload(SelectionStrategy strategy, std::span<const float> scores,
                                      const float* embeddings, int d, size_t budget, uint64_t seed,
                                      const SelectionParams& params) {
  const size_t n = scores.size();
  budget = std::min(budget, n);
  if (budget == 0) return {};
  switch (strategy) {
    case SelectionStrategy::random: {
      std::vector<size_t> order(n);
      for (size_t i = 0; i < n; ++i) order[i] = i;
      std::mt19937_64 rng(seed);
      for (size_t i = 0; i < budget; ++i) {  // partial Fisher-Yates
        std::swap(order[i], order[i + rng() % (n - i)]);
      }
      order.resize(budget);
      return order;
    }
    case SelectionStrategy::lowest_margin: {
      auto order = by_score(scores);
      order.resize(budget);
      return order;
    }
    case SelectionStrategy::margin_diversity: {
      if (embeddings == nullptr) {
        fail_expected("margin_diversity selection", "embeddings of the samples", "none");
      }
      auto order = by_score(scores);
      const size_t factor = std::max<size_t>(1, params.candidate_factor);
      order.resize(std::min(n, budget > n / factor ? n : budget * factor));
      return k_center_greedy(embeddings, d, order, budget);
    }
  }
  return {};
}

// ---- streaming ----

TokenBucket::TokenBucket(double rate_per_s, double capacity)
    : rate_(rate_per_s), capacity_(capacity), tokens_(capacity) {
  if (!(rate_per_s > 0.0) || !(capacity > 0.0)) {
    fail_expected("token bucket", "rate > 0 and capacity > 0",
                  "rate " + std::to_string(rate_per_s) + ", capacity " + std::to_string(capacity));
  }
}

void TokenBucket::refill(double now_s) {
  if (started_ && now_s > last_s_) {
    tokens_ = std::min(capacity_, tokens_ + (now_s - last_s_) * rate_);
  }
  if (!started_ || now_s > last_s_) last_s_ = now_s;
  started_ = true;
}

double TokenBucket::available(double now_s) {
  refill(now_s);
  return tokens_;
}

bool TokenBucket::can_take(double amount, double now_s) {
  refill(now_s);
  return tokens_ >= amount || tokens_ >= capacity_;
}

bool TokenBucket::try_take(double amount, double now_s) {
  if (!can_take(amount, now_s)) return false;
  tokens_ -= amount;
  return true;
}

UploadSelector::UploadSelector(const UploadSelectorParams& params, int dim)
    : params_(params),
      dim_(dim),
      samples_(params.samples_per_minute / 60.0,
               std::max(1.0, params.burst_seconds * params.samples_per_minute / 60.0)),
      bytes_(params.uplink_kbps * 1000.0 / 8.0,
             params.burst_seconds * params.uplink_kbps * 1000.0 / 8.0),
      rng_(params.seed) {
  if (dim <= 0) fail_expected("upload selector", "dim > 0", std::to_string(dim));
  if (params.window_size == 0) fail_expected("upload selector", "window_size >= 1", "0");
  if (!(params.burst_seconds > 0.0)) {
    fail_expected("upload selector", "burst_seconds > 0", std::to_string(params.burst_seconds));
  }
}

std::vector<uint64_t> UploadSelector::offer(uint64_t id, float score, const float* embedding,
                                            size_t bytes, double now_s) {
  ++stats_.offered;
  std::vector<uint64_t> out;
  if (!window_.empty() && now_s - window_start_s_ >= params_.window_seconds) {
    out = close_window(now_s);
  }
  if (!(score < params_.upload_threshold)) return out;
  ++stats_.candidates;
  if (window_.empty()) window_start_s_ = now_s;
  window_.push_back({id, score, bytes});
  window_embeddings_.insert(window_embeddings_.end(), embedding, embedding + dim_);
  if (window_.size() >= params_.window_size) {
    auto more = close_window(now_s);
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

std::vector<uint64_t> UploadSelector::flush(double now_s) { return close_window(now_s); }

bool UploadSelector::in_window(uint64_t id) const {
  return std::any_of(window_.begin(), window_.end(),
                     [id](const Candidate& c) { return c.id == id; });
}

std::vector<size_t> UploadSelector::window_order() {
  const size_t m = window_.size();
  std::vector<float> scores(m);
  for (size_t i = 0; i < m; ++i) scores[i] = window_[i].score;
  switch (params_.strategy) {
    case SelectionStrategy::random: {
      std::vector<size_t> order(m);
      for (size_t i = 0; i < m; ++i) order[i] = i;
      for (size_t i = 0; i + 1 < m; ++i) std::swap(order[i], order[i + rng_() % (m - i)]);
      return order;
    }
    case SelectionStrategy::lowest_margin:
      return by_score(scores);
    case SelectionStrategy::margin_diversity: {
      std::vector<float> centers;
      centers.reserve(recent_.size() * dim_);
      for (const auto& e : recent_) centers.insert(centers.end(), e.begin(), e.end());
      return k_center_greedy(window_embeddings_.data(), dim_, by_score(scores), m, centers.data(),
                             recent_.size(), params_.min_distance);
    }
  }
  return {};
}

std::vector<uint64_t> UploadSelector::close_window(double now_s) {
  std::vector<uint64_t> out;
  if (window_.empty()) return out;
  for (size_t pos : window_order()) {
    const Candidate& c = window_[pos];
    // Both budgets must cover the upload before either is charged.
    if (!samples_.can_take(1.0, now_s) || !bytes_.can_take(double(c.bytes), now_s)) {
      ++stats_.skipped_budget;
      continue;
    }
    samples_.try_take(1.0, now_s);
    bytes_.try_take(double(c.bytes), now_s);
    out.push_back(c.id);
    ++stats_.uploaded;
    stats_.uploaded_bytes += c.bytes;
    const float* e = window_embeddings_.data() + pos * dim_;
    recent_.emplace_back(e, e + dim_);
    while (recent_.size() > params_.memory) recent_.pop_front();
  }
  window_.clear();
  window_embeddings_.clear();
  return out;
}

}  // namespace edgefm::customize
