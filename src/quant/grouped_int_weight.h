// Conversions around GroupedIntWeight (src/backends/linear_weight.h): from a QuantizedMatrix (the QDQ result)
// to the packed GPTQ-convention weight, back to dense f32, and a structural validation shared by the reader and
// the exporter.
#pragma once

#include <string>

#include "backends/linear_weight.h"
#include "quant/qdq.h"

namespace omni {

// Packs codes (qweight), f16 scales [G, N] and real zero points [G, N]. g_idx is left undefined (k / g).
GroupedIntWeight to_grouped_int_weight(const QuantizedMatrix& qm);

// Dense W[n, k] = scales[g(k), n] * (code(k, n) − zeros[g(k), n]) as F32 [N, K], honouring g_idx.
Tensor dequantize_grouped_int_weight(const GroupedIntWeight& w);

}  // namespace omni
