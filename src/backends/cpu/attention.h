// Causal grouped-query attention, f32. Query head h reads key/value head h / (Hq / Hkv).
#pragma once

#include <cstdint>

namespace omni {

// q, out [B, T, Hq, hd]; k, v [B, S, Hkv, hd] with S >= start_pos + T. Query t sees keys 0 .. start_pos + t.
// Scores are scaled by 1/sqrt(hd); softmax subtracts the row max.
void attention_forward(float* out, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t S, int64_t Hq, int64_t Hkv, int64_t hd, int64_t start_pos);

}  // namespace omni
