// Rotary embedding (rotate-half / NeoX layout) for training on x [B, T, H, hd] at positions 0..T−1 of every
// sample, forward and backward as a pair. The rotation is orthogonal, so the backward is the inverse rotation
// of the incoming gradient; nothing is saved but the cos/sin table.
#pragma once

#include <cstdint>
#include <vector>

namespace omni {

// cos/sin of position t and frequency i, [T, hd/2], computed in f32 exactly as the inference kernel (rope.cpp)
// does, so training and inference rotate identically.
struct RopeTable {
  int64_t seq = 0, half = 0;
  std::vector<float> cos, sin;
};
RopeTable make_rope_table(int64_t T, int64_t head_dim, float theta);

// In place: (a, b) = (x[i], x[i + hd/2]) -> (a·c − b·s, b·c + a·s).
template <class T>
void rope_forward_train(T* x, const RopeTable& table, int64_t B, int64_t seq, int64_t H, int64_t hd);
// In place on the gradient: (da, db) -> (da·c + db·s, db·c − da·s).
template <class T>
void rope_backward(T* dx, const RopeTable& table, int64_t B, int64_t seq, int64_t H, int64_t hd);

}  // namespace omni
