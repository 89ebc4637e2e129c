// Dense weights from a GroupedIntWeight on the CPU: W[n, k] = scales[g(k), n] · (code(k, n) − zeros[g(k), n]),
// g(k) = g_idx[k] or k / group_size. The CPU backend runs the weights its int4 kernels do not take (2, 3 and
// 8 bits) through this, and quant/ dequantizes with it (one place for the formula on the host).
#pragma once

#include "backends/linear_weight.h"

namespace omni {

// F32 or BF16 [N, K]. F32 is exact (an f16 scale times a small integer); BF16 rounds each value once.
// The caller validates the weight's shapes and dtypes (quant/grouped_int_weight.h, or prepare_linear).
Tensor dequantize_gptq_cpu(const GroupedIntWeight& w, DType out_dtype);

}  // namespace omni
