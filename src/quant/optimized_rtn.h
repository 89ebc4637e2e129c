// Optimized RTN (AUTOROUND.md §3): round-to-nearest whose per-group scale is chosen by a grid search that
// minimises the importance-weighted reconstruction error Σ_k imp_k · (ŵ_k − w_k)², where imp_k is the mean of
// x_k² over the calibration tokens feeding the layer (an "imatrix"). No gradients, no V/alpha/beta.
#pragma once

#include <cstdint>

#include "quant/qdq.h"

namespace omni {

// Divisors tried per group, relative to the RTN divisor: d = d_rtn · (1 + kOptimizedRtnStep · t) for
// t = −kOptimizedRtnSteps .. kOptimizedRtnSteps (for 4-bit symmetric: 8 ± 0.06·t, t = 1..100, plus 8 itself).
inline constexpr float kOptimizedRtnStep = 0.0075f;
inline constexpr int kOptimizedRtnSteps = 100;

// Quantises w [rows, cols] with the searched scales. `importance` [cols] (non-negative) may be null: then every
// input counts the same. The RTN scale is among the candidates, so the weighted error is never worse than RTN's.
QuantizedMatrix quantize_matrix_optimized(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                                          const float* importance);

// Σ_k imp_k · (ŵ_k − w_k)² of one group under `gs` (imp may be null = 1).
double weighted_group_error(const float* w, const float* imp, int64_t n, const GroupScale& gs,
                            const QuantScheme& scheme);

}  // namespace omni
