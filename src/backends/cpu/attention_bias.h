// Attention over every key of a sample with an additive score bias and a given scale (T5's relative position
// bias, unscaled scores), for inference, f32. backend.h, attention_with_bias, states the contract.
#pragma once

#include <cstdint>

namespace omni {

// out, q [B, Lq, H, hd]; k, v [B, Lk, H, hd]; bias [H, Lq, Lk] shared by the B samples, or [B, H, Lq, Lk] when
// bias_per_sample. out[b, i, h] = Σ_j p_j v[b, j, h] with p = softmax_j(scale · q[b, i, h]·k[b, j, h] + bias).
// A row whose scores are all −inf (every key masked) gives zeros.
void attention_with_bias_forward(float* out, const float* q, const float* k, const float* v, const float* bias,
                                 int64_t B, int64_t Lq, int64_t Lk, int64_t H, int64_t hd, bool bias_per_sample,
                                 float scale);

}  // namespace omni
