#include "quant/rtn.h"

#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "quant/grouped_int_weight.h"

namespace omni {

namespace {

QuantizedMatrix quantize_dense(const Tensor& weight, const QuantScheme& scheme) {
  OMNI_CHECK(weight.ndim() == 2, "RTN: a Linear weight must be 2-D [out, in], found shape ",
             shape_str(weight.shape()));
  const DType dt = weight.dtype();
  OMNI_CHECK(dt == DType::F32 || dt == DType::BF16 || dt == DType::F16,
             "RTN: weight dtype must be F32, BF16 or F16, found ", dtype_name(dt));
  if (dt == DType::F32) return quantize_matrix(weight.data<float>(), weight.dim(0), weight.dim(1), scheme);
  // Widen to f32 in parallel (exact for both 16-bit types).
  const int64_t n = weight.numel();
  std::vector<float> w32(static_cast<size_t>(n));
  const uint16_t* src = weight.data<uint16_t>();
  parallel_for(0, n, 1 << 16, [&](int64_t i0, int64_t i1) {
    if (dt == DType::BF16)
      for (int64_t i = i0; i < i1; ++i) w32[static_cast<size_t>(i)] = bf16_to_f32(src[i]);
    else
      for (int64_t i = i0; i < i1; ++i) w32[static_cast<size_t>(i)] = f16_to_f32(src[i]);
  });
  return quantize_matrix(w32.data(), weight.dim(0), weight.dim(1), scheme);
}

}  // namespace

GroupedIntWeight quantize_rtn(const Tensor& weight, const QuantScheme& scheme) {
  return to_grouped_int_weight(quantize_dense(weight, scheme));
}

Tensor fake_quantize_rtn(const Tensor& weight, const QuantScheme& scheme) {
  const QuantizedMatrix qm = quantize_dense(weight, scheme);
  Tensor out = Tensor::empty({qm.rows, qm.cols}, DType::F32);
  dequantize_matrix(qm, out.data<float>());
  return out;
}

}  // namespace omni
