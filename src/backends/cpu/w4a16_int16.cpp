#include "backends/cpu/w4a16_int16.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/cpu/simd.h"
#include "backends/cpu/w4a16_tiles.h"
#include "core/half.h"

namespace omni {
namespace {

constexpr int64_t kTile = kW4TileOutputs;
constexpr float kQMax = 32767.0f;
// Word rows (256 bytes each) ahead of the current one that the first row of x prefetches.
constexpr int64_t kPrefetchRows = 16;

void tile_scalar(const W4Int16Rows& a, const W4A16CpuWeights& w, float* y, int64_t M, int64_t t) {
  const int64_t S = w.num_segments(), N = w.out_features, rows = w.padded_inputs / 8;
  const auto [codes, scales, zeros] = w4_tile_data(w, t);
  const int64_t lanes = std::min(kTile, N - t * kTile);
  for (int64_t m = 0; m < M; ++m) {
    const uint32_t* xp = a.pairs.data() + m * rows * 4;
    for (int64_t lane = 0; lane < lanes; ++lane) {
      float acc = 0.0f;
      for (int64_t s = 0; s < S; ++s) {
        int32_t isum = 0;
        for (int64_t r = w.segment_rows[static_cast<size_t>(s)]; r < w.segment_rows[static_cast<size_t>(s) + 1]; ++r) {
          const uint32_t word = codes[r * kTile + lane];
          for (int j = 0; j < 4; ++j) {
            const uint32_t pair = xp[4 * r + j];
            isum += static_cast<int32_t>((word >> (4 * j)) & 0xfu) * static_cast<int16_t>(pair & 0xffffu) +
                    static_cast<int32_t>((word >> (4 * j + 16)) & 0xfu) * static_cast<int16_t>(pair >> 16);
          }
        }
        const int32_t d = isum - int32_t{zeros[s * kTile + lane]} * a.qsum[static_cast<size_t>(m * S + s)];
        const float sc = f16_to_f32(scales[s * kTile + lane]) * a.scale[static_cast<size_t>(m * S + s)];
        acc = std::fma(static_cast<float>(d), sc, acc);
      }
      y[m * N + t * kTile + lane] = acc;
    }
  }
}

#if defined(OMNI_CPU_HAVE_AVX2)
// One segment of tile t for one row of x: the segment's codes (at most 16 rows × 256 bytes) stay in L1 while
// the rows of x take turns. vpmaddwd multiplies the 16-bit halves of each word lane by a pair of q values and
// adds them: nibble position j of both halves in one instruction.
// Rows m0..m0 + M of x (M ≤ kW4PrefillMinRows).
void tile_avx2(const W4Int16Rows& a, const W4A16CpuWeights& w, float* y, int64_t m0, int64_t M, int64_t t) {
  const int64_t S = w.num_segments(), N = w.out_features, rows = w.padded_inputs / 8;
  const auto [codes, scales, zeros] = w4_tile_data(w, t);
  const __m256i low4 = _mm256_set1_epi16(0xf);
  alignas(32) float acc[kW4PrefillMinRows][kTile] = {};
  for (int64_t s = 0; s < S; ++s) {
    const int64_t r0 = w.segment_rows[static_cast<size_t>(s)], r1 = w.segment_rows[static_cast<size_t>(s) + 1];
    for (int64_t m = 0; m < M; ++m) {
      const uint32_t* xp = a.pairs.data() + (m0 + m) * rows * 4;
      const __m256i qs = _mm256_set1_epi32(a.qsum[static_cast<size_t>((m0 + m) * S + s)]);
      const __m256 sx = _mm256_set1_ps(a.scale[static_cast<size_t>((m0 + m) * S + s)]);
      for (int half = 0; half < 2; ++half) {
        const int lane0 = 32 * half;
        __m256i isum[4];
        for (auto& v : isum) v = _mm256_setzero_si256();
        for (int64_t r = r0; r < r1; ++r) {
          const __m256i x0 = _mm256_set1_epi32(static_cast<int32_t>(xp[4 * r + 0]));
          const __m256i x1 = _mm256_set1_epi32(static_cast<int32_t>(xp[4 * r + 1]));
          const __m256i x2 = _mm256_set1_epi32(static_cast<int32_t>(xp[4 * r + 2]));
          const __m256i x3 = _mm256_set1_epi32(static_cast<int32_t>(xp[4 * r + 3]));
          // The first row of x runs ahead of the hardware prefetcher, one 64-byte line per q (a word row is 256
          // bytes, the first half covers it).
          if (m == 0 && half == 0)
            for (int q = 0; q < 4; ++q)
              _mm_prefetch(reinterpret_cast<const char*>(codes + (r + kPrefetchRows) * kTile + 16 * q), _MM_HINT_T0);
          for (int q = 0; q < 4; ++q) {
            const __m256i wv = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes + r * kTile + lane0 + 8 * q));
            const __m256i p0 = _mm256_madd_epi16(_mm256_and_si256(wv, low4), x0);
            const __m256i p1 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(wv, 4), low4), x1);
            const __m256i p2 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(wv, 8), low4), x2);
            const __m256i p3 = _mm256_madd_epi16(_mm256_srli_epi16(wv, 12), x3);
            isum[q] = _mm256_add_epi32(isum[q], _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
          }
        }
        for (int q = 0; q < 4; ++q) {
          const int lane = lane0 + 8 * q;
          const __m256i z = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(zeros + s * kTile + lane)));
          const __m256i d = _mm256_sub_epi32(isum[q], _mm256_mullo_epi32(z, qs));
          const __m256 sw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(scales + s * kTile + lane)));
          _mm256_store_ps(&acc[m][lane],
                          _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(sw, sx), _mm256_load_ps(&acc[m][lane])));
        }
      }
    }
  }
  const int64_t lanes = std::min(kTile, N - t * kTile);
  for (int64_t m = 0; m < M; ++m) std::copy(acc[m], acc[m] + lanes, y + (m0 + m) * N + t * kTile);
}
#endif

#if defined(OMNI_CPU_HAVE_AVX512)
// The AVX2 kernel at twice the width: a word row of a tile (64 outputs) is four 512-bit vectors, so one pass
// covers the tile. The first row of x also prefetches the codes ahead of the hardware prefetcher (as the f32
// AVX-512 kernel does), which leaves a single sequential stream latency-bound otherwise.
void tile_avx512(const W4Int16Rows& a, const W4A16CpuWeights& w, float* y, int64_t m0, int64_t M, int64_t t) {
  const int64_t S = w.num_segments(), N = w.out_features, rows = w.padded_inputs / 8;
  const auto [codes, scales, zeros] = w4_tile_data(w, t);
  const __m512i low4 = _mm512_set1_epi16(0xf);
  alignas(64) float acc[kW4PrefillMinRows][kTile] = {};
  for (int64_t s = 0; s < S; ++s) {
    const int64_t r0 = w.segment_rows[static_cast<size_t>(s)], r1 = w.segment_rows[static_cast<size_t>(s) + 1];
    for (int64_t m = 0; m < M; ++m) {
      const uint32_t* xp = a.pairs.data() + (m0 + m) * rows * 4;
      __m512i isum[4];
      for (auto& v : isum) v = _mm512_setzero_si512();
      for (int64_t r = r0; r < r1; ++r) {
        const __m512i x0 = _mm512_set1_epi32(static_cast<int32_t>(xp[4 * r + 0]));
        const __m512i x1 = _mm512_set1_epi32(static_cast<int32_t>(xp[4 * r + 1]));
        const __m512i x2 = _mm512_set1_epi32(static_cast<int32_t>(xp[4 * r + 2]));
        const __m512i x3 = _mm512_set1_epi32(static_cast<int32_t>(xp[4 * r + 3]));
        for (int q = 0; q < 4; ++q) {
          if (m == 0) _mm_prefetch(reinterpret_cast<const char*>(codes + (r + kPrefetchRows) * kTile + 16 * q), _MM_HINT_T0);
          const __m512i wv = _mm512_load_si512(reinterpret_cast<const void*>(codes + r * kTile + 16 * q));
          const __m512i p0 = _mm512_madd_epi16(_mm512_and_si512(wv, low4), x0);
          const __m512i p1 = _mm512_madd_epi16(_mm512_and_si512(_mm512_srli_epi16(wv, 4), low4), x1);
          const __m512i p2 = _mm512_madd_epi16(_mm512_and_si512(_mm512_srli_epi16(wv, 8), low4), x2);
          const __m512i p3 = _mm512_madd_epi16(_mm512_srli_epi16(wv, 12), x3);
          isum[q] = _mm512_add_epi32(isum[q], _mm512_add_epi32(_mm512_add_epi32(p0, p1), _mm512_add_epi32(p2, p3)));
        }
      }
      const __m512i qs = _mm512_set1_epi32(a.qsum[static_cast<size_t>((m0 + m) * S + s)]);
      const __m512 sx = _mm512_set1_ps(a.scale[static_cast<size_t>((m0 + m) * S + s)]);
      for (int q = 0; q < 4; ++q) {
        const int lane = 16 * q;
        const __m512i z = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(zeros + s * kTile + lane)));
        const __m512i d = _mm512_sub_epi32(isum[q], _mm512_mullo_epi32(z, qs));
        const __m512 sw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + s * kTile + lane)));
        _mm512_store_ps(&acc[m][lane],
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sw, sx), _mm512_load_ps(&acc[m][lane])));
      }
    }
  }
  const int64_t lanes = std::min(kTile, N - t * kTile);
  for (int64_t m = 0; m < M; ++m) std::copy(acc[m], acc[m] + lanes, y + (m0 + m) * N + t * kTile);
}
#endif

}  // namespace

void quantize_w4_rows(W4Int16Rows& out, const float* x, const W4A16CpuWeights& w, int64_t M) {
  const int64_t S = w.num_segments(), Kp = w.padded_inputs, rows = Kp / 8;
  out.pairs.resize(static_cast<size_t>(M * rows * 4));
  out.scale.resize(static_cast<size_t>(M * S));
  out.qsum.resize(static_cast<size_t>(M * S));
  std::vector<int16_t> q(static_cast<size_t>(8 * kW4MaxSegmentRows));
  for (int64_t m = 0; m < M; ++m) {
    const float* xm = x + m * Kp;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t r0 = w.segment_rows[static_cast<size_t>(s)], r1 = w.segment_rows[static_cast<size_t>(s) + 1];
      float amax = 0.0f;
      bool finite = true;
      for (int64_t k = 8 * r0; k < 8 * r1; ++k) {
        finite = finite && std::isfinite(xm[k]);
        amax = std::max(amax, std::fabs(xm[k]));
      }
      // A NaN or Inf input makes the segment's scale NaN, so every output it touches is NaN (as in f32).
      const bool usable = finite && amax > 0.0f;
      const float inv = usable ? kQMax / amax : 0.0f;
      int32_t sum = 0;
      for (int64_t k = 8 * r0; k < 8 * r1; ++k) {
        const float v = std::clamp(std::nearbyint(xm[k] * inv), -kQMax, kQMax);
        const int16_t qk = usable ? static_cast<int16_t>(v) : int16_t{0};
        q[static_cast<size_t>(k - 8 * r0)] = qk;
        sum += qk;
      }
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < 4; ++j) {
          const auto lo = static_cast<uint16_t>(q[static_cast<size_t>(8 * (r - r0) + j)]);
          const auto hi = static_cast<uint16_t>(q[static_cast<size_t>(8 * (r - r0) + 4 + j)]);
          out.pairs[static_cast<size_t>((m * rows + r) * 4 + j)] = uint32_t{lo} | (uint32_t{hi} << 16);
        }
      out.scale[static_cast<size_t>(m * S + s)] =
          !finite ? std::numeric_limits<float>::quiet_NaN() : (usable ? amax / kQMax : 0.0f);
      out.qsum[static_cast<size_t>(m * S + s)] = sum;
    }
  }
}

void w4a16_tile_int16(const W4Int16Rows& a, const W4A16CpuWeights& w, float* y, int64_t M, int64_t t, CpuIsa isa) {
  switch (isa) {
#if defined(OMNI_CPU_HAVE_AVX512)
    case CpuIsa::Avx512:
      for (int64_t m = 0; m < M; m += kW4PrefillMinRows)
        tile_avx512(a, w, y, m, std::min(kW4PrefillMinRows, M - m), t);
      return;
#endif
#if defined(OMNI_CPU_HAVE_AVX2)
    case CpuIsa::Avx2:
      for (int64_t m = 0; m < M; m += kW4PrefillMinRows)
        tile_avx2(a, w, y, m, std::min(kW4PrefillMinRows, M - m), t);
      return;
#endif
    default: tile_scalar(a, w, y, M, t);
  }
}

}  // namespace omni
