#include "backends/cpu/rope_interleaved_backward.h"

#include <algorithm>

#include "core/thread_pool.h"

namespace omni {
namespace {

constexpr int64_t kGrain = 1 << 14;

template <class T, class Pair>
void each_pair(T* x, const T* cos, const T* sin, int64_t N, int64_t H, int64_t hd, Pair pair) {
  parallel_for(0, N, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, H * hd)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* c = cos + n * hd;
      const T* s = sin + n * hd;
      for (int64_t h = 0; h < H; ++h) {
        T* v = x + (n * H + h) * hd;
        for (int64_t k = 0; k < hd; k += 2) pair(v[k], v[k + 1], c[k], c[k + 1], s[k], s[k + 1]);
      }
    }
  });
}

}  // namespace

template <class T>
void rope_interleaved_forward_train(T* x, const T* cos, const T* sin, int64_t N, int64_t H, int64_t hd) {
  each_pair(x, cos, sin, N, H, hd, [](T& a, T& b, T c0, T c1, T s0, T s1) {
    const T re = a, im = b;
    a = re * c0 - im * s0;
    b = im * c1 + re * s1;
  });
}

template <class T>
void rope_interleaved_backward(T* dx, const T* cos, const T* sin, int64_t N, int64_t H, int64_t hd) {
  each_pair(dx, cos, sin, N, H, hd, [](T& a, T& b, T c0, T c1, T s0, T s1) {
    const T g0 = a, g1 = b;
    a = g0 * c0 + g1 * s1;
    b = g1 * c1 - g0 * s0;
  });
}

template void rope_interleaved_forward_train<float>(float*, const float*, const float*, int64_t, int64_t, int64_t);
template void rope_interleaved_forward_train<double>(double*, const double*, const double*, int64_t, int64_t,
                                                     int64_t);
template void rope_interleaved_backward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t);
template void rope_interleaved_backward<double>(double*, const double*, const double*, int64_t, int64_t, int64_t);

}  // namespace omni
