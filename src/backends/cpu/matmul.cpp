#include "backends/cpu/matmul.h"

#include <algorithm>
#include <type_traits>
#include <vector>

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

#if defined(OMNI_CPU_HAVE_AVX2)
// BF16 weights, small batches. A 32-bit lane holding two bf16 values is two f32 values for one instruction each:
// shifted left by 16 (the even element) and with the low half masked off (the odd one), where widening 8 values
// costs two. x is de-interleaved once per call to match (x_pairs below). MB = 1 keeps the even and odd sums in
// separate registers, so that 8 independent FMA chains hide the FMA latency.
template <int MB>
void block_bf16_pairs_avx2(float* y, const float* xd, const uint16_t* const* wr, int nb, int64_t K, int64_t N,
                           int64_t n0) {
  const __m256i high = _mm256_set1_epi32(static_cast<int32_t>(0xffff0000u));
  __m256 even[MB][kRowsN], odd[MB][kRowsN];
  for (int m = 0; m < MB; ++m)
    for (int q = 0; q < kRowsN; ++q) even[m][q] = odd[m][q] = _mm256_setzero_ps();
  const int64_t K16 = K / 16 * 16;
  for (int64_t k = 0; k < K16; k += 16) {
    for (int q = 0; q < kRowsN; ++q) {
      // Rows are short (2 KiB at K = 1024): the next tile's rows (kRowsN rows on) are fetched while this one
      // runs, else each new row waits for the hardware prefetcher to notice it.
      if ((k & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(wr[q] + kRowsN * K + k), _MM_HINT_T0);
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[q] + k));
      const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
      const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(w, high));
      for (int m = 0; m < MB; ++m) {
        even[m][q] = _mm256_fmadd_ps(we, _mm256_loadu_ps(xd + m * K + k), even[m][q]);
        if (MB == 1)
          odd[m][q] = _mm256_fmadd_ps(wo, _mm256_loadu_ps(xd + m * K + k + 8), odd[m][q]);
        else
          even[m][q] = _mm256_fmadd_ps(wo, _mm256_loadu_ps(xd + m * K + k + 8), even[m][q]);
      }
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int q = 0; q < nb; ++q) {
      float s = hsum8(MB == 1 ? _mm256_add_ps(even[m][q], odd[m][q]) : even[m][q]);
      for (int64_t kk = K16; kk < K; ++kk) s += xd[m * K + kk] * bf16_to_f32(wr[q][kk]);  // tail in input order
      y[m * N + n0 + q] = s;
    }
}

// One row of x (decode) against rows n0..n1 of W, one weight row at a time: the rows of a chunk are contiguous, so
// the chunk is one sequential stream that the hardware prefetcher follows across rows (four short rows side by
// side are four short streams, each restarting it). Four blocks of 16 per step, even and odd sums apart: 8
// independent FMA chains. For short rows only (see the dispatch).
void rows_bf16_pairs_avx2(float* y, const float* xd, const uint16_t* w, int64_t K, int64_t n0, int64_t n1) {
  const __m256i high = _mm256_set1_epi32(static_cast<int32_t>(0xffff0000u));
  const int64_t K64 = K / 64 * 64, K16 = K / 16 * 16;
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* wr = w + n * K;
    __m256 acc[8];
    for (auto& a : acc) a = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k < K64; k += 64)
      for (int b = 0; b < 4; ++b) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + k + 16 * b));
        acc[2 * b] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), _mm256_loadu_ps(xd + k + 16 * b),
                                     acc[2 * b]);
        acc[2 * b + 1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, high)),
                                         _mm256_loadu_ps(xd + k + 16 * b + 8), acc[2 * b + 1]);
      }
    for (; k < K16; k += 16) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + k));
      acc[0] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), _mm256_loadu_ps(xd + k), acc[0]);
      acc[1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, high)), _mm256_loadu_ps(xd + k + 8), acc[1]);
    }
    const __m256 s4 = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    const __m256 t4 = _mm256_add_ps(_mm256_add_ps(acc[4], acc[5]), _mm256_add_ps(acc[6], acc[7]));
    float s = hsum8(_mm256_add_ps(s4, t4));
    for (; k < K; ++k) s += xd[k] * bf16_to_f32(wr[k]);  // tail in input order
    y[n] = s;
  }
}

// x rows with every block of 16 inputs reordered as its 8 even then its 8 odd entries (the tail past the last
// whole block stays in order), for block_bf16_pairs_avx2.
void x_pairs(float* xd, const float* x, int64_t M, int64_t K) {
  const int64_t K16 = K / 16 * 16;
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * K;
    float* d = xd + m * K;
    for (int64_t k = 0; k < K16; k += 16)
      for (int i = 0; i < 8; ++i) {
        d[k + i] = xr[k + 2 * i];
        d[k + 8 + i] = xr[k + 2 * i + 1];
      }
    for (int64_t k = K16; k < K; ++k) d[k] = xr[k];
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
    add_bias_columns(y, bias, M, N, 0, N);
    return;
  }
  // Aim for chunks of at least ~64k multiply-adds so thread hand-off stays negligible.
  const int64_t grain = std::max<int64_t>(kRowsN, (int64_t{1} << 16) / std::max<int64_t>(1, M * K)) / kRowsN * kRowsN;
#if defined(OMNI_CPU_HAVE_AVX2)
  if constexpr (std::is_same_v<WT, uint16_t>) {
    if (isa == CpuIsa::Avx2) {
      // Reused across calls; workers reach it through `xd` (a thread_local named inside the task would be theirs).
      thread_local std::vector<float> xd_storage;
      xd_storage.resize(static_cast<size_t>(M * K));
      float* const xd = xd_storage.data();
      x_pairs(xd, x, M, K);
      parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
        // Measured (2-core EPYC VM, M = 1): one row at a time reads 15-17 GB/s where K ≤ 1024 against 12-14 for
        // 4-row tiles, but only 11-13 on long rows, where the tiles' four streams keep 16-19.
        if (M == 1 && K <= 1024)
          rows_bf16_pairs_avx2(y, xd, w, K, n0, n1);
        else
          tiles_simd(y, xd, w, M, K, N, n0, n1, 2, block_bf16_pairs_avx2<1>, block_bf16_pairs_avx2<2>,
                     block_bf16_pairs_avx2<2>);
        add_bias_columns(y, bias, M, N, n0, n1);
      });
      return;
    }
  }
#endif
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
    add_bias_columns(y, bias, M, N, n0, n1);
  });
}

}  // namespace

void add_bias_columns(float* y, const float* bias, int64_t M, int64_t N, int64_t n0, int64_t n1) {
  if (!bias) return;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = n0; n < n1; ++n) y[m * N + n] += bias[n];
}

void matmul_f32_weights(float* y, const float* x, const float* w, const float* bias, int64_t M, int64_t K,
                        int64_t N) {
  matmul_any(y, x, w, bias, M, K, N);
}

void matmul_bf16_weights(float* y, const float* x, const uint16_t* w, const float* bias, int64_t M, int64_t K,
                         int64_t N) {
  matmul_any(y, x, w, bias, M, K, N);
}

}  // namespace omni
