#include "backends/cpu/embedding.h"

#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace omni {

void embedding_forward(float* y, const int32_t* ids, int64_t T, const void* table, DType table_dtype,
                       int64_t vocab, int64_t dim) {
  OMNI_CHECK(table_dtype == DType::F32 || table_dtype == DType::BF16 || table_dtype == DType::F16,
             "embedding: table dtype expected F32, BF16 or F16, found ", dtype_name(table_dtype));
  for (int64_t t = 0; t < T; ++t) {
    const int64_t id = ids[t];
    OMNI_CHECK(id >= 0 && id < vocab, "embedding: token id ", id, " at position ", t, " is outside [0, ", vocab,
               ")");
    float* dst = y + t * dim;
    switch (table_dtype) {
      case DType::F32:
        std::memcpy(dst, static_cast<const float*>(table) + id * dim, static_cast<size_t>(dim) * sizeof(float));
        break;
      case DType::BF16: {
        const uint16_t* src = static_cast<const uint16_t*>(table) + id * dim;
        for (int64_t i = 0; i < dim; ++i) dst[i] = bf16_to_f32(src[i]);
        break;
      }
      default: {
        const uint16_t* src = static_cast<const uint16_t*>(table) + id * dim;
        for (int64_t i = 0; i < dim; ++i) dst[i] = f16_to_f32(src[i]);
      }
    }
  }
}

}  // namespace omni
