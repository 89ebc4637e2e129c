#include "backends/cpu/dequantize_gptq.h"

#include <algorithm>

#include "backends/gptq_codes.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace omni {

Tensor dequantize_gptq_cpu(const GroupedIntWeight& w, DType out_dtype) {
  OMNI_CHECK(out_dtype == DType::F32 || out_dtype == DType::BF16, "dequantize: output dtype must be F32 or BF16, ",
             "found ", dtype_name(out_dtype));
  const int64_t K = w.in_features, N = w.out_features;
  Tensor out = Tensor::empty({N, K}, out_dtype);
  const uint32_t* q = w.qweight.data<uint32_t>();
  const uint16_t* s = w.scales.data<uint16_t>();
  const uint8_t* z = w.zeros.data<uint8_t>();
  const int32_t* gi = w.g_idx.defined() ? w.g_idx.data<int32_t>() : nullptr;
  const bool f32 = out_dtype == DType::F32;
  float* dst32 = f32 ? out.data<float>() : nullptr;
  uint16_t* dst16 = f32 ? nullptr : out.data<uint16_t>();
  // Tiles of 16 outputs: every word row is read as 16 adjacent words, and each task writes 16 output rows.
  constexpr int64_t kTile = 16;
  const int64_t tiles = (N + kTile - 1) / kTile;
  parallel_for(0, tiles, std::max<int64_t>(1, 65536 / (K * kTile)), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * kTile, n1 = std::min(N, n0 + kTile);
      for (int64_t k = 0; k < K; ++k) {
        const int64_t g = gi ? gi[k] : k / w.group_size;
        for (int64_t n = n0; n < n1; ++n) {
          const float v = f16_to_f32(s[g * N + n]) *
                          static_cast<float>(static_cast<int>(gptq_code(q, N, k, n, w.bits)) - int{z[g * N + n]});
          if (f32) dst32[n * K + k] = v;
          else dst16[n * K + k] = f32_to_bf16(v);
        }
      }
    }
  });
  return out;
}

}  // namespace omni
