// Token embedding lookup into f32 rows.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace omni {

// y[t, :] = table[ids[t], :] for a table of dtype F32, BF16 or F16 with shape [vocab, dim]. An id outside
// [0, vocab) throws omni::Error naming it.
void embedding_forward(float* y, const int32_t* ids, int64_t T, const void* table, DType table_dtype,
                       int64_t vocab, int64_t dim);

}  // namespace omni
