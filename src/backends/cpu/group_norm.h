// GroupNorm over NCHW f32 activations (torch.nn.GroupNorm; the VAE's norms, 32 groups at eps 1e-6 in FLUX).
#pragma once

#include <cstdint>

namespace omni {

// x, y [B, C, S] (S = the spatial positions), G groups of C / G consecutive channels. Each (b, g) block of
// (C / G) · S values is normalised by its mean and biased variance (two passes in double), then scaled and shifted
// per channel by weight and bias [C] (both null: no affine). y may alias x.
void group_norm_forward(float* y, const float* x, int64_t B, int64_t C, int64_t S, int64_t G, float eps,
                        const float* weight, const float* bias);

}  // namespace omni
