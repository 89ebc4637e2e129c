#include "backends/cpu/matmul.h"

#include <algorithm>
#include <type_traits>

#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/gemm_f32.h"
#include "backends/cpu/simd.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

// Each kernel computes a tile of up to kRowsN outputs for up to kMaxRowsM rows of x; the weight rows of a
// tile stay in L1/L2 while the rows of x stream past them.
constexpr int kRowsN = 4;
// Batches of at least this many rows run as a GEMM over converted weight panels (gemm_f32.h).
constexpr int64_t kDensePrefillMinRows = 8;

inline float load_weight(const float* w, int64_t i) { return w[i]; }
inline float load_weight(const uint16_t* w, int64_t i) { return bf16_to_f32(w[i]); }

template <class WT>
void tile_scalar(float* y, const float* x, const WT* w, int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1) {
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * K;
    for (int64_t n = n0; n < n1; ++n) {
      const WT* wr = w + n * K;
      float s = 0.0f;
      for (int64_t k = 0; k < K; ++k) s += xr[k] * load_weight(wr, k);
      y[m * N + n] = s;
    }
  }
}

#if defined(OMNI_CPU_HAVE_AVX512)
inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load16(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));  // bf16 bits -> f32 bits
}

template <int MB, class WT>
void block_avx512(float* y, const float* x, const WT* const* wr, int nb, int64_t K, int64_t N, int64_t n0) {
  __m512 acc[MB][kRowsN];
  for (int m = 0; m < MB; ++m)
    for (int q = 0; q < kRowsN; ++q) acc[m][q] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 mask =
        K - k >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (K - k)) - 1);
    __m512 wv[kRowsN];
    for (int q = 0; q < kRowsN; ++q) wv[q] = load16(wr[q] + k, mask);
    for (int m = 0; m < MB; ++m) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + m * K + k);
      for (int q = 0; q < kRowsN; ++q) acc[m][q] = _mm512_fmadd_ps(xv, wv[q], acc[m][q]);
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int q = 0; q < nb; ++q) y[m * N + n0 + q] = _mm512_reduce_add_ps(acc[m][q]);
}
#endif

#if defined(OMNI_CPU_HAVE_AVX2)
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int MB, class WT>
void block_avx2(float* y, const float* x, const WT* const* wr, int nb, int64_t K, int64_t N, int64_t n0) {
  __m256 acc[MB][kRowsN];
  for (int m = 0; m < MB; ++m)
    for (int q = 0; q < kRowsN; ++q) acc[m][q] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 wv[kRowsN];
    for (int q = 0; q < kRowsN; ++q) wv[q] = load8(wr[q] + k);
    for (int m = 0; m < MB; ++m) {
      const __m256 xv = _mm256_loadu_ps(x + m * K + k);
      for (int q = 0; q < kRowsN; ++q) acc[m][q] = _mm256_fmadd_ps(xv, wv[q], acc[m][q]);
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int q = 0; q < nb; ++q) {
      float s = hsum8(acc[m][q]);
      for (int64_t kk = k; kk < K; ++kk) s += x[m * K + kk] * load_weight(wr[q], kk);
      y[m * N + n0 + q] = s;
    }
}
#endif

// Walks the [M, n0..n1) range in tiles of kRowsN outputs × MB rows for one SIMD path.
template <class WT, class Block1, class Block2, class Block4>
void tiles_simd(float* y, const float* x, const WT* w, int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1,
                int max_mb, Block1 b1, Block2 b2, Block4 b4) {
  for (int64_t nt = n0; nt < n1; nt += kRowsN) {
    const int nb = static_cast<int>(std::min<int64_t>(kRowsN, n1 - nt));
    const WT* wr[kRowsN];
    for (int q = 0; q < kRowsN; ++q) wr[q] = w + (nt + std::min(q, nb - 1)) * K;  // repeat the last valid row
    int64_t m = 0;
    for (; max_mb >= 4 && m + 4 <= M; m += 4) b4(y + m * N, x + m * K, wr, nb, K, N, nt);
    for (; m + 2 <= M; m += 2) b2(y + m * N, x + m * K, wr, nb, K, N, nt);
    for (; m < M; ++m) b1(y + m * N, x + m * K, wr, nb, K, N, nt);
  }
}

#if defined(OMNI_CPU_HAVE_AVX2)
// Columns i of the result are rows v[i]: an 8 × 8 transpose of f32 lanes.
inline void transpose8(__m256 v[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xee);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    v[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}
#endif

// Dense weights [N, K] as the prefill GEMM's panels: bp[p][j] = w[j0 + j, p0 + p], converted to f32.
template <class WT>
class DensePanelSource final : public GemmPanelSource {
 public:
  DensePanelSource(const WT* w, int64_t K) : w_(w), K_(K) {}

  void pack(float* bp, int nr_stride, int64_t p0, int64_t kc, int64_t j0, int64_t nr) const override {
    int64_t p = 0;
#if defined(OMNI_CPU_HAVE_AVX2)
    if (active_cpu_isa() != CpuIsa::Scalar) {
      for (; p + 8 <= kc; p += 8)
        for (int jb = 0; jb < nr_stride; jb += 8) {
          __m256 v[8];
          for (int i = 0; i < 8; ++i)
            v[i] = jb + i < nr ? load8(w_ + (j0 + jb + i) * K_ + p0 + p) : _mm256_setzero_ps();
          transpose8(v);
          for (int i = 0; i < 8; ++i) _mm256_storeu_ps(bp + (p + i) * nr_stride + jb, v[i]);
        }
    }
#endif
    for (; p < kc; ++p)
      for (int j = 0; j < nr_stride; ++j)
        bp[p * nr_stride + j] = j < nr ? load_weight(w_ + (j0 + j) * K_, p0 + p) : 0.0f;
  }

 private:
  const WT* w_;
  int64_t K_;
};

template <class WT>
void matmul_any(float* y, const float* x, const WT* w, const float* bias, int64_t M, int64_t K, int64_t N) {
  const CpuIsa isa = active_cpu_isa();
  if (M >= kDensePrefillMinRows) {  // prefill: weights converted once, every row of x against them
    gemm_f32_packed_b(M, N, K, x, K, DensePanelSource<WT>(w, K), y, N);
    if (bias)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) y[m * N + n] += bias[n];
    return;
  }
  // Aim for chunks of at least ~256k multiply-adds so thread hand-off stays negligible.
  const int64_t grain = std::max<int64_t>(kRowsN, (int64_t{1} << 18) / std::max<int64_t>(1, M * K)) / kRowsN * kRowsN;
  parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
    switch (isa) {
#if defined(OMNI_CPU_HAVE_AVX512)
      case CpuIsa::Avx512:
        tiles_simd(y, x, w, M, K, N, n0, n1, 4, block_avx512<1, WT>, block_avx512<2, WT>, block_avx512<4, WT>);
        break;
#endif
#if defined(OMNI_CPU_HAVE_AVX2)
      case CpuIsa::Avx2:
        tiles_simd(y, x, w, M, K, N, n0, n1, 2, block_avx2<1, WT>, block_avx2<2, WT>, block_avx2<2, WT>);
        break;
#endif
      default: tile_scalar(y, x, w, M, K, N, n0, n1);
    }
    if (bias)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = n0; n < n1; ++n) y[m * N + n] += bias[n];
  });
}

}  // namespace

void matmul_f32_weights(float* y, const float* x, const float* w, const float* bias, int64_t M, int64_t K,
                        int64_t N) {
  matmul_any(y, x, w, bias, M, K, N);
}

void matmul_bf16_weights(float* y, const float* x, const uint16_t* w, const float* bias, int64_t M, int64_t K,
                         int64_t N) {
  matmul_any(y, x, w, bias, M, K, N);
}

}  // namespace omni
