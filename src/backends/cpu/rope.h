// Rotary position embedding, rotate-half (NeoX) layout as in HF Qwen3 (default rope type, scaling 1):
// inv_freq[i] = 1 / theta^(2i / hd) in f32, angle = pos · inv_freq[i] in f32, and for i < hd/2
//   out[i] = x[i]·cos − x[i + hd/2]·sin,   out[i + hd/2] = x[i + hd/2]·cos + x[i]·sin.
#pragma once

#include <cstdint>

namespace omni {

// x [T, H, hd] rotated in place; positions [T]. hd must be even.
void rope_forward(float* x, const int32_t* positions, int64_t T, int64_t H, int64_t hd, float theta);

}  // namespace omni
