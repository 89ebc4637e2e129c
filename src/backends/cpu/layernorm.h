// LayerNorm over the last dim (FLUX's adaLN norms are LayerNorm without affine, CLIP's have weight and bias):
// y = (x − mean) / sqrt(var + eps) [· w + b], the variance the biased one (mean of squared deviations), as in
// torch.nn.LayerNorm.
#pragma once

#include <cstdint>

namespace omni {

// x, y [rows, dim]; weight and bias [dim] as f32 or raw bf16 bits, or both null (no affine); y may alias x.
struct LayerNormAffine {
  const float* weight_f32 = nullptr;
  const uint16_t* weight_bf16 = nullptr;
  const float* bias_f32 = nullptr;
  const uint16_t* bias_bf16 = nullptr;
};
void layernorm_forward(float* y, const float* x, int64_t rows, int64_t dim, float eps, const LayerNormAffine& affine);

}  // namespace omni
