// RMSNorm over the last dim, as in HF Qwen3RMSNorm with f32 activations: y = x · rsqrt(mean(x²) + eps) · w.
#pragma once

#include <cstdint>

namespace omni {

// x, y [rows, dim]; weight [dim] as f32 or raw bf16 bits (exactly one of weight_f32 / weight_bf16 non-null).
// y may alias x.
void rmsnorm_forward(float* y, const float* x, const float* weight_f32, const uint16_t* weight_bf16, int64_t rows,
                     int64_t dim, float eps);

}  // namespace omni
