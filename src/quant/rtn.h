// Plain round-to-nearest (AUTOROUND.md §3): the QDQ formula with V = 0 and alpha = beta = 1, no calibration data.
#pragma once

#include "backends/linear_weight.h"
#include "quant/qdq.h"

namespace omni {

// Quantises a dense Linear weight [N, K] (F32, BF16 or F16) to the GPTQ-convention GroupedIntWeight.
// Multithreaded over output rows.
GroupedIntWeight quantize_rtn(const Tensor& weight, const QuantScheme& scheme);

// The same QDQ as quantize_rtn, returned as the f32 fake-quant weight [N, K] (what a forward with Ŵ uses).
Tensor fake_quantize_rtn(const Tensor& weight, const QuantScheme& scheme);

}  // namespace omni
