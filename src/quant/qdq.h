// Quantize–dequantize of whole weights (AUTOROUND.md §2) on the host: RTN uses it with V = 0, alpha = beta = 1;
// the AutoRound tuner freezes its rounding offsets V and min/max shrink factors alpha/beta with it. The per-group
// formula itself (QuantScheme, GroupScale, compute_group_scale, the code of one element) is in
// backends/qdq_formula.h, shared with the backends' fake-quant ops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/qdq_formula.h"

namespace omni {

// Codes of the n elements of one group. `v` (rounding offsets) may be null (= 0). When `in_range` is not null
// it receives 1 where the unclamped rounded value was inside the code range (the STE passes gradient there).
void quantize_group(const float* w, const float* v, int64_t n, const GroupScale& gs, const QuantScheme& scheme,
                    uint8_t* codes, uint8_t* in_range = nullptr);

// Optional tuning parameters for a whole [N, K] weight (all may be null).
struct QdqParams {
  const float* v = nullptr;      // [N, K] rounding offsets
  const float* alpha = nullptr;  // [N, G] max-side shrink
  const float* beta = nullptr;   // [N, G] min-side shrink
};

// A weight [N, K] quantised row by row; groups run along K.
struct QuantizedMatrix {
  QuantScheme scheme;
  int64_t rows = 0;        // N (output features)
  int64_t cols = 0;        // K (input features)
  int64_t group_size = 0;  // effective, never -1
  int64_t num_groups = 0;  // G = ceil(K / group_size); a short last group is allowed
  std::vector<uint8_t> codes;      // [N, K] unsigned codes
  std::vector<GroupScale> groups;  // [N, G]

  const GroupScale& group(int64_t row, int64_t g) const { return groups[static_cast<size_t>(row * num_groups + g)]; }
};

// An empty result for a [rows, cols] weight: shape fields set, codes and group scales allocated. Validates the
// scheme and the shape (`what` names the caller in the error).
QuantizedMatrix allocate_quantized_matrix(int64_t rows, int64_t cols, const QuantScheme& scheme, const char* what);

// Quantises an f32 weight [N, K] (multithreaded over rows). Values of V/alpha/beta follow `params`.
QuantizedMatrix quantize_matrix(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                                const QdqParams& params = {});

// Ŵ in f32 [N, K] (the forward rounds it to bf16 where it needs to).
void dequantize_matrix(const QuantizedMatrix& qm, float* out);

// Quantise then dequantise in one call: the fake-quant weight.
std::vector<float> fake_quantize(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                                 const QdqParams& params = {});

}  // namespace omni
