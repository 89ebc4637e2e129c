// Elementwise f32 ops of the transformer block.
#pragma once

#include <cstdint>

namespace omni {

// y = silu(gate) · up = gate / (1 + exp(−gate)) · up. y may alias gate or up.
void silu_mul_forward(float* y, const float* gate, const float* up, int64_t n);
// y = a + b. y may alias a or b.
void add_forward(float* y, const float* a, const float* b, int64_t n);
// y = GELU with the tanh approximation (FLUX, T5's gated GELU): 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
// y may alias x.
void gelu_tanh_forward(float* y, const float* x, int64_t n);
// adaLN modulation: y[b, t, :] = x[b, t, :] · (1 + scale[b, :]) + shift[b, :] for x [B, T, D]. y may alias x.
void modulate_forward(float* y, const float* x, const float* scale, const float* shift, int64_t B, int64_t T,
                      int64_t D);

// y = silu(x) = x / (1 + exp(−x)). y may alias x.
void silu_forward(float* y, const float* x, int64_t n);
// Gated residual: y[b, t, :] = x[b, t, :] + gate[b, :] · h[b, t, :] for x, h [B, T, D]. y may alias x or h.
void gated_add_forward(float* y, const float* x, const float* gate, const float* h, int64_t B, int64_t T, int64_t D);
// Rotation of pairs (2k, 2k+1) of x [N, H, hd] in place by the tables cos, sin [N, hd] (backend.h,
// rope_interleaved).
void rope_interleaved_forward(float* x, const float* cos, const float* sin, int64_t N, int64_t H, int64_t hd);

// CLIP's activation: y = x · sigmoid(1.702 x). y may alias x.
void quick_gelu_forward(float* y, const float* x, int64_t n);
// y = a · b. y may alias a or b.
void mul_forward(float* y, const float* a, const float* b, int64_t n);

}  // namespace omni
