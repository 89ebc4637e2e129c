#include "backends/linear_weight.h"

#include "core/error.h"

namespace omni {

int64_t gptq_values_per_block(int bits) {
  OMNI_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 8, "GPTQ packing supports 2, 3, 4 and 8 bits, found ",
             bits);
  return bits == 3 ? 32 : 32 / bits;
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
    OMNI_CHECK(t.device().is_cpu(), what, ": ", name, " must be a host tensor");
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

}  // namespace omni
