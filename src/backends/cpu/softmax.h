// Row-wise softmax over the last dim, in place, f32, with the row max subtracted first.
#pragma once

#include <cstdint>

namespace omni {

void softmax_forward(float* x, int64_t rows, int64_t dim);

}  // namespace omni
