#include "backends/cpu/softmax.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"

namespace omni {

void softmax_forward(float* x, int64_t rows, int64_t dim) {
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = x + r * dim;
      const float mx = *std::max_element(row, row + dim);
      double sum = 0.0;
      for (int64_t i = 0; i < dim; ++i) {
        row[i] = std::exp(row[i] - mx);
        sum += row[i];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t i = 0; i < dim; ++i) row[i] *= inv;
    }
  });
}

}  // namespace omni
