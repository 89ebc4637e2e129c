#include "backends/cpu/layout.h"

#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

constexpr int64_t kTile = 32;  // square tiles: both the reads and the writes stay within a few cache lines

template <typename T>
void transpose_typed(T* y, const T* x, int64_t batch, int64_t M, int64_t N) {
  const int64_t tm = (M + kTile - 1) / kTile, tn = (N + kTile - 1) / kTile;
  parallel_for(0, batch * tm * tn, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / (tm * tn), i0 = (t / tn) % tm * kTile, j0 = t % tn * kTile;
      const T* xb = x + b * M * N;
      T* yb = y + b * M * N;
      const int64_t i1 = std::min(M, i0 + kTile), j1 = std::min(N, j0 + kTile);
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < i1; ++i) yb[j * M + i] = xb[i * N + j];
    }
  });
}

template <typename T>
void upsample_typed(T* y, const T* x, int64_t planes, int64_t H, int64_t W) {
  parallel_for(0, planes * H, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, W)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {  // input row r = (plane, i) gives output rows 2i and 2i + 1 of its plane
      const T* src = x + r * W;
      T* d0 = y + r * 4 * W;  // (plane · 2H + 2i) · 2W = 4W · r
      for (int64_t j = 0; j < W; ++j) d0[2 * j] = d0[2 * j + 1] = src[j];
      std::copy(d0, d0 + 2 * W, d0 + 2 * W);
    }
  });
}

}  // namespace

void transpose_last2(void* y, const void* x, size_t elem_size, int64_t batch, int64_t M, int64_t N) {
  switch (elem_size) {
    case 1: return transpose_typed(static_cast<uint8_t*>(y), static_cast<const uint8_t*>(x), batch, M, N);
    case 2: return transpose_typed(static_cast<uint16_t*>(y), static_cast<const uint16_t*>(x), batch, M, N);
    case 4: return transpose_typed(static_cast<uint32_t*>(y), static_cast<const uint32_t*>(x), batch, M, N);
    case 8: return transpose_typed(static_cast<uint64_t*>(y), static_cast<const uint64_t*>(x), batch, M, N);
  }
  OMNI_FAIL("transpose: no kernel for ", elem_size, "-byte elements");
}

void upsample_nearest2x_forward(void* y, const void* x, size_t elem_size, int64_t planes, int64_t H, int64_t W) {
  switch (elem_size) {
    case 1: return upsample_typed(static_cast<uint8_t*>(y), static_cast<const uint8_t*>(x), planes, H, W);
    case 2: return upsample_typed(static_cast<uint16_t*>(y), static_cast<const uint16_t*>(x), planes, H, W);
    case 4: return upsample_typed(static_cast<uint32_t*>(y), static_cast<const uint32_t*>(x), planes, H, W);
    case 8: return upsample_typed(static_cast<uint64_t*>(y), static_cast<const uint64_t*>(x), planes, H, W);
  }
  OMNI_FAIL("upsample_nearest2x: no kernel for ", elem_size, "-byte elements");
}

}  // namespace omni
