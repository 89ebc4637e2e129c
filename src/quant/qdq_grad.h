// Straight-through-estimator gradients of the fake-quantized weight Ŵ = QDQ(W; V, alpha, beta) of qdq.h with
// respect to the AutoRound parameters (AUTOROUND.md §2). Given G = ∂L/∂Ŵ (the ordinary weight gradient of the
// Linear), per group with scale s, codes q = u − zero and in_j = 1 where the unclamped rounded value was inside
// the code range (round is passed straight through, the f16 cast of s passes the gradient unchanged):
//   ∂L/∂V_j = G_j · s · in_j
// Full-range symmetric (maxq = 2^(b−1)):
//   ∂L/∂s = Σ_j G_j · (q_j − in_j · W_j / s);  s = −wmax·alpha/maxq when scale_from_max (∂s/∂alpha = −wmax/maxq)
//   else s = −wmin·beta/maxq (∂s/∂beta = −wmin/maxq).
// Asymmetric (maxq = 2^b − 1, s = (wmax·alpha − wmin·beta)/maxq, zp = round(−wmin·beta/s), Ŵ = s·(u − zp)):
//   inside the range u − zp = round(W/s + V), so zp cancels and ∂Ŵ_j/∂s = q_j − W_j/s;
//   at the clamp u is constant and Ŵ_j = s·(u_j − zp), so ∂Ŵ_j/∂s = q_j − s·∂zp/∂s = q_j − wmin·beta/s and
//   zp's direct dependence on beta gives ∂Ŵ_j/∂beta|direct = −s·∂zp/∂beta = wmin. Hence
//   ∂L/∂s = Σ_j G_j · (q_j − (in_j ? W_j : wmin·beta) / s),  ∂s/∂alpha = wmax/maxq,  ∂s/∂beta = −wmin/maxq,
//   ∂L/∂beta = ∂L/∂s · ∂s/∂beta + wmin · Σ_{j clamped} G_j   (the last term is dropped if zp itself was clamped).
// When the |s| < 1e-5 floor was active, ∂L/∂s = 0 (the direct zp path of asym remains).
#pragma once

#include <cstdint>

#include "quant/qdq.h"

namespace omni {

// Adds the gradients of the weight [rows, cols] to grad_v [rows, cols], grad_alpha and grad_beta [rows, G]
// (each may be null when not wanted). `params` are the values the forward used (alpha/beta are clamped to
// [0, 1] as in the forward). Multithreaded over rows.
void fake_quant_backward(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                         const QdqParams& params, const float* grad_w_hat, float* grad_v, float* grad_alpha,
                         float* grad_beta);

}  // namespace omni
