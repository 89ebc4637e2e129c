#include "quant/grouped_int_weight.h"

#include <algorithm>

#include "backends/cpu/dequantize_gptq.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "quant/pack.h"

namespace omni {

GroupedIntWeight to_grouped_int_weight(const QuantizedMatrix& qm) {
  GroupedIntWeight w;
  w.bits = qm.scheme.bits;
  w.in_features = qm.cols;
  w.out_features = qm.rows;
  w.group_size = qm.group_size;
  w.qweight = pack_auto_gptq_qweight(qm.codes.data(), qm.rows, qm.cols, qm.scheme.bits);
  const int64_t G = qm.num_groups, N = qm.rows;
  w.scales = Tensor::empty({G, N}, DType::F16);
  w.zeros = Tensor::empty({G, N}, DType::U8);
  uint16_t* s = w.scales.data<uint16_t>();
  uint8_t* z = w.zeros.data<uint8_t>();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < G; ++g) {
      const GroupScale& gs = qm.group(n, g);
      s[g * N + n] = f32_to_f16(gs.scale);  // exact: the scale already is an f16 value
      z[g * N + n] = static_cast<uint8_t>(gs.zero);
    }
  }
  return w;
}

Tensor dequantize_grouped_int_weight(const GroupedIntWeight& w) {
  validate_grouped_int_weight(w, "dequantize");
  return dequantize_gptq_cpu(w, DType::F32);
}

}  // namespace omni
