#include "quant/grouped_int_weight.h"

#include <algorithm>

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

void validate_grouped_int_weight(const GroupedIntWeight& w, const std::string& what) {
  const int64_t block = gptq_values_per_block(w.bits);
  const int64_t K = w.in_features, N = w.out_features;
  OMNI_CHECK(K > 0 && N > 0, what, ": in/out features must be positive, found ", K, " x ", N);
  OMNI_CHECK(w.group_size > 0 && w.group_size <= K, what, ": group size ", w.group_size, " out of range for ", K,
             " inputs");
  OMNI_CHECK(K % block == 0, what, ": in_features ", K, " is not a multiple of ", block);
  const int64_t G = w.num_groups();
  auto expect = [&](const Tensor& t, const char* name, DType dt, const Shape& shape) {
    OMNI_CHECK(t.defined(), what, ": ", name, " is missing");
    OMNI_CHECK(t.dtype() == dt, what, ": ", name, " has dtype ", dtype_name(t.dtype()), ", expected ",
               dtype_name(dt));
    OMNI_CHECK(t.shape() == shape, what, ": ", name, " has shape ", shape_str(t.shape()), ", expected ",
               shape_str(shape));
  };
  expect(w.qweight, "qweight", DType::I32, {K * w.bits / 32, N});
  expect(w.scales, "scales", DType::F16, {G, N});
  expect(w.zeros, "zeros", DType::U8, {G, N});
  const uint8_t* z = w.zeros.data<uint8_t>();
  const int max_code = (1 << w.bits) - 1;
  for (int64_t i = 0; i < G * N; ++i)
    OMNI_CHECK(z[i] <= max_code, what, ": zero point ", int(z[i]), " at group ", i / N, " output ", i % N,
               " exceeds ", max_code);
  if (w.g_idx.defined()) {
    expect(w.g_idx, "g_idx", DType::I32, {K});
    const int32_t* gi = w.g_idx.data<int32_t>();
    for (int64_t k = 0; k < K; ++k)
      OMNI_CHECK(gi[k] >= 0 && gi[k] < G, what, ": g_idx[", k, "] = ", gi[k], " outside [0, ", G, ")");
  }
}

Tensor dequantize_grouped_int_weight(const GroupedIntWeight& w) {
  validate_grouped_int_weight(w, "dequantize");
  const int64_t K = w.in_features, N = w.out_features;
  const std::vector<uint8_t> codes = unpack_auto_gptq_qweight(w.qweight, N, K, w.bits);
  Tensor out = Tensor::empty({N, K}, DType::F32);
  float* dst = out.data<float>();
  const uint16_t* s = w.scales.data<uint16_t>();
  const uint8_t* z = w.zeros.data<uint8_t>();
  const int32_t* gi = w.g_idx.defined() ? w.g_idx.data<int32_t>() : nullptr;
  parallel_for(0, N, std::max<int64_t>(1, 4096 / K), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t k = 0; k < K; ++k) {
        const int64_t g = gi ? gi[k] : k / w.group_size;
        const float scale = f16_to_f32(s[g * N + n]);
        dst[n * K + k] = scale * static_cast<float>(int(codes[static_cast<size_t>(n * K + k)]) - int(z[g * N + n]));
      }
    }
  });
  return out;
}

}  // namespace omni
