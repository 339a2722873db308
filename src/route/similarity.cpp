#include "route/similarity.h"

#include <cmath>
#include <string>

#include "common/error.h"

namespace edgefm::route {

float dot(const float* a, const float* b, int d) {
  // Eight independent partial sums: the compiler turns them into vector lanes without
  // needing -ffast-math to reassociate one running sum.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int t = 0;
  for (; t + 8 <= d; t += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[t + l] * b[t + l];
  }
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; t < d; ++t) sum += a[t] * b[t];
  return sum;
}

float l2_normalize(float* v, int d) {
  const float norm = std::sqrt(dot(v, v, d));
  if (norm > 0.0f) {
    const float inv = 1.0f / norm;
    for (int t = 0; t < d; ++t) v[t] *= inv;
  }
  return norm;
}

void l2_normalize_rows(float* rows, size_t n, int d) {
  for (size_t i = 0; i < n; ++i) l2_normalize(rows + i * static_cast<size_t>(d), d);
}

void cosine_similarities(const float* embeddings, size_t n, const float* pool, int k, int d,
                         float* sims) {
  if (k < 0 || d <= 0) {
    fail_expected("cosine_similarities", "k >= 0 and d > 0",
                  "k = " + std::to_string(k) + ", d = " + std::to_string(d));
  }
  for (size_t i = 0; i < n; ++i) {
    const float* e = embeddings + i * static_cast<size_t>(d);
    float* out = sims + i * static_cast<size_t>(k);
    for (int j = 0; j < k; ++j) out[j] = dot(e, pool + static_cast<size_t>(j) * d, d);
  }
}

Top2 top2(const float* sims, int k) {
  if (k < 1) fail_expected("top2", "at least one similarity", std::to_string(k));
  Top2 best;
  best.first = 0;
  best.sim1 = sims[0];
  for (int j = 1; j < k; ++j) {
    const float s = sims[j];
    if (s > best.sim1) {
      best.second = best.first;
      best.sim2 = best.sim1;
      best.first = j;
      best.sim1 = s;
    } else if (best.second < 0 || s > best.sim2) {
      best.second = j;
      best.sim2 = s;
    }
  }
  return best;
}

}  // namespace edgefm::route
