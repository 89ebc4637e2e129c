// 2-D convolution (cross-correlation, as torch.nn.Conv2d) of NCHW f32 images, stride 1, zero padding: the VAE
// decoder's 3×3 and 1×1 convolutions. A 1×1 kernel without padding is one GEMM per image; any other kernel is
// lowered by im2col, a band of output rows at a time (the column matrix of a full 1024² image would take
// gigabytes), each band one call of the f32 GEMM.
#pragma once

#include <cstdint>

namespace omni {

// y [B, Cout, Ho, Wo] = bias[co] + Σ_{ci, i, j} w[co, ci, i, j] · x[b, ci, r + i − pad, c + j − pad] (0 outside
// x), Ho = H + 2·pad − kh + 1, Wo = W + 2·pad − kw + 1. bias may be null; y must not overlap x or w.
// band_rows: output rows per im2col band; 0 chooses them from the scratch limit (tests force small bands).
void conv2d_forward(float* y, const float* x, const float* w, const float* bias, int64_t B, int64_t Cin, int64_t H,
                    int64_t W, int64_t Cout, int64_t kh, int64_t kw, int64_t pad, int64_t band_rows = 0);

}  // namespace omni
