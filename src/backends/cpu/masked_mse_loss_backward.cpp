#include "backends/cpu/masked_mse_loss_backward.h"

#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

int64_t count_rows(const uint8_t* mask, int64_t rows) {
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r) n += mask[r] ? 1 : 0;
  OMNI_CHECK(n > 0, "masked_mse_loss: every one of the ", rows, " rows is masked out");
  return n;
}

}  // namespace

std::vector<uint8_t> last_token_mask(int64_t B, int64_t T) {
  std::vector<uint8_t> m(static_cast<size_t>(B * T), 1);
  for (int64_t b = 0; b < B; ++b) m[static_cast<size_t>(b * T + T - 1)] = 0;
  return m;
}

template <class T>
double masked_mse_loss_forward(const T* y, const T* ref, const uint8_t* mask, int64_t rows, int64_t dim) {
  const int64_t n = count_rows(mask, rows);
  double sum = 0.0;  // serial: a fixed summation order keeps the loss (and best-snapshot choices) reproducible
  for (int64_t r = 0; r < rows; ++r) {
    if (!mask[r]) continue;
    double row_sum = 0.0;
    for (int64_t d = 0; d < dim; ++d) {
      const double e = static_cast<double>(y[r * dim + d]) - static_cast<double>(ref[r * dim + d]);
      row_sum += e * e;
    }
    sum += row_sum;
  }
  return sum / (static_cast<double>(n) * static_cast<double>(dim));
}

template <class T>
void masked_mse_loss_backward(T* dy, const T* y, const T* ref, const uint8_t* mask, int64_t rows, int64_t dim,
                              double dloss) {
  const int64_t n = count_rows(mask, rows);
  const T c = static_cast<T>(2.0 * dloss / (static_cast<double>(n) * static_cast<double>(dim)));
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t d = 0; d < dim; ++d) {
        const int64_t i = r * dim + d;
        dy[i] = mask[r] ? c * (y[i] - ref[i]) : T(0);
      }
  });
}

template double masked_mse_loss_forward<float>(const float*, const float*, const uint8_t*, int64_t, int64_t);
template double masked_mse_loss_forward<double>(const double*, const double*, const uint8_t*, int64_t, int64_t);
template void masked_mse_loss_backward<float>(float*, const float*, const float*, const uint8_t*, int64_t, int64_t,
                                              double);
template void masked_mse_loss_backward<double>(double*, const double*, const double*, const uint8_t*, int64_t,
                                               int64_t, double);

}  // namespace omni
