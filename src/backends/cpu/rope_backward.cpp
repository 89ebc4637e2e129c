#include "backends/cpu/rope_backward.h"

#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {

RopeTable make_rope_table(int64_t T, int64_t head_dim, float theta) {
  OMNI_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope: head_dim must be even and positive, got ", head_dim);
  RopeTable tab;
  tab.seq = T;
  tab.half = head_dim / 2;
  tab.cos.resize(static_cast<size_t>(T * tab.half));
  tab.sin.resize(static_cast<size_t>(T * tab.half));
  for (int64_t i = 0; i < tab.half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float inv_freq = 1.0f / std::pow(theta, exponent);
    for (int64_t t = 0; t < T; ++t) {
      const float angle = static_cast<float>(t) * inv_freq;
      tab.cos[static_cast<size_t>(t * tab.half + i)] = std::cos(angle);
      tab.sin[static_cast<size_t>(t * tab.half + i)] = std::sin(angle);
    }
  }
  return tab;
}

namespace {

template <class T, bool kInverse>
void rotate(T* x, const RopeTable& tab, int64_t B, int64_t seq, int64_t H, int64_t hd) {
  OMNI_CHECK(tab.seq >= seq && tab.half * 2 == hd, "rope: table for ", tab.seq, " positions × head_dim ",
             tab.half * 2, " does not cover seq ", seq, " × head_dim ", hd);
  const int64_t half = hd / 2;
  parallel_for(0, B * seq, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = r % seq;
      const float* cs = tab.cos.data() + t * half;
      const float* sn = tab.sin.data() + t * half;
      for (int64_t h = 0; h < H; ++h) {
        T* v = x + (r * H + h) * hd;
        for (int64_t i = 0; i < half; ++i) {
          const T a = v[i], b = v[i + half];
          const T c = cs[i], s = sn[i];
          if constexpr (kInverse) {
            v[i] = a * c + b * s;
            v[i + half] = b * c - a * s;
          } else {
            v[i] = a * c - b * s;
            v[i + half] = b * c + a * s;
          }
        }
      }
    }
  });
}

}  // namespace

template <class T>
void rope_forward_train(T* x, const RopeTable& table, int64_t B, int64_t seq, int64_t H, int64_t hd) {
  rotate<T, false>(x, table, B, seq, H, hd);
}

template <class T>
void rope_backward(T* dx, const RopeTable& table, int64_t B, int64_t seq, int64_t H, int64_t hd) {
  rotate<T, true>(dx, table, B, seq, H, hd);
}

template void rope_forward_train<float>(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);
template void rope_forward_train<double>(double*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);
template void rope_backward<float>(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);
template void rope_backward<double>(double*, const RopeTable&, int64_t, int64_t, int64_t, int64_t);

}  // namespace omni
