// Rotary position embedding, rotate-half (NeoX) layout as in HF Qwen3 (default rope type, scaling 1):
// inv_freq[i] = 1 / theta^(2i / hd) in f32, angle = pos · inv_freq[i] in f32, and for i < hd/2
//   out[i] = x[i]·cos − x[i + hd/2]·sin,   out[i + hd/2] = x[i + hd/2]·cos + x[i]·sin.
// The inverse rotation (the backward of the forward, since the rotation is orthogonal) negates sin.
#pragma once

#include <cstdint>

namespace omni {

// x [N, H, hd] rotated in place, row n at positions[n]. hd must be even. When the rows outnumber the distinct
// positions (training batches repeat 0..T−1) cos/sin come from one table over 0..max; both ways compute each
// value with the same f32 steps, so they agree bit for bit. T = float is the backend's kernel; T = double (same
// f32 cos/sin) serves finite-difference tests.
template <class T>
void rope_rows(T* x, const int32_t* positions, int64_t N, int64_t H, int64_t hd, float theta, bool inverse);

}  // namespace omni
