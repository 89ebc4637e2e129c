// A Linear layer's weight as it comes out of a checkpoint, before a backend puts it into its own layout.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace omni {

// Integer weight with per-(group, output) scale and zero point, in the GPTQ convention shared by the
// auto_round:auto_gptq and auto_gptq checkpoint formats:
//   W[n, k] = scales[g_idx[k], n] * (code(k, n) - zeros[g_idx[k], n])
// where g_idx[k] = k / group_size unless an explicit g_idx is given (act-order checkpoints).
struct GroupedIntWeight {
  int bits = 4;
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  int64_t group_size = 0;    // g; equals K for per-output-channel quantisation
  Tensor qweight;  // I32 [K * bits / 32, N]; word [r, n] holds the codes of inputs r*(32/bits) + j, field j
                   // (bits wide) counted from the least significant bit
  Tensor scales;   // F16 [K / g, N], may be negative
  Tensor zeros;    // U8 [K / g, N], the real zero point (8 for symmetric 4-bit), already un-offset
  Tensor g_idx;    // I32 [K] or undefined (then k / g)

  int64_t num_groups() const { return (in_features + group_size - 1) / group_size; }
};

// The smallest run of values that fills whole int32 words: 16, 32, 8, 4 values for 2, 3, 4, 8 bits (throws for
// other widths). A packed axis must hold a multiple of it.
int64_t gptq_values_per_block(int bits);

// Checks bits, dtypes and shapes of every member against in / out features and group size, the zero points
// against 2^bits − 1 and g_idx against the group count; `what` names the layer in the error. The checkpoint
// reader, the exporter and the backends' prepare_linear all call it before they read the codes.
void validate_grouped_int_weight(const GroupedIntWeight& w, const std::string& what);

struct LinearWeight {
  Tensor dense;                // F32/BF16/F16 [N, K] when not quantised
  GroupedIntWeight quantized;  // used when is_quantized
  bool is_quantized = false;
  Tensor bias;                 // F32/BF16/F16 [N] or undefined

  int64_t in_features() const { return is_quantized ? quantized.in_features : dense.dim(1); }
  int64_t out_features() const { return is_quantized ? quantized.out_features : dense.dim(0); }
};

}  // namespace omni
