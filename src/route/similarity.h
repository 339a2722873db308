#pragma once
// Cosine similarity of edge embeddings to the class pool: the one kernel every score reads.
// Batched pointer+count calls with caller-owned outputs; no allocation on the hot path.
#include <cstddef>

namespace edgefm::route {

// Dot product of two length-d vectors.
float dot(const float* a, const float* b, int d);

// Scales v to unit L2 norm in place and returns the norm it had; a zero vector stays zero.
float l2_normalize(float* v, int d);
void l2_normalize_rows(float* rows, size_t n, int d);

// sims (n x k, row-major, caller-owned) = embeddings (n x d) · pool (k x d)ᵀ. Both sides must
// already be L2-normalised (encoders and TextPool guarantee it), so each entry is a cosine.
void cosine_similarities(const float* embeddings, size_t n, const float* pool, int k, int d,
                         float* sims);

// The two most similar pool entries of one row of similarities.
struct Top2 {
  int first = -1;    // index of the highest similarity (the predicted class)
  int second = -1;   // index of the runner-up; -1 when the pool has one entry
  float sim1 = 0.0f;
  float sim2 = -1.0f;  // -1 (the lowest cosine) when the pool has one entry
  float margin() const { return sim1 - sim2; }
};

// k >= 1 (throws Error otherwise). Ties keep the lower index first.
Top2 top2(const float* sims, int k);

// The paper's uncertainty score Unc(x) = sim1 - sim2 (higher = more confident).
inline float margin(const float* sims, int k) { return top2(sims, k).margin(); }

}  // namespace edgefm::route
