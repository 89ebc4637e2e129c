// The f32-activation W4A16 kernels (layout in w4a16_pack.cpp) and the dispatch between them, the integer
// kernels (w4a16_int16.cpp) and the prefill GEMM (w4a16_prefill.cpp). The f32 kernels sum x·(u − 8) over a
// segment in registers and apply the scale once per segment:
//   y[n] = Σ_seg s[seg, n] · (Σ_{k∈seg} x[k]·(u[k, n] − 8) + (8 − z[seg, n]) · Σ_{k∈seg} x[k])
#include "backends/cpu/w4a16_matmul.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/simd.h"
#include "backends/cpu/w4a16_int16.h"
#include "backends/cpu/w4a16_prefill.h"
#include "backends/cpu/w4a16_tiles.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

constexpr int64_t kTile = kW4TileOutputs;
// How many word rows (256 bytes each) ahead of the current one the AVX-512 kernel prefetches.
#ifndef OMNI_W4_PREFETCH_ROWS
#define OMNI_W4_PREFETCH_ROWS 16
#endif
#ifndef OMNI_W4_PREFETCH_HINT
#define OMNI_W4_PREFETCH_HINT _MM_HINT_T0
#endif
constexpr int64_t kPrefetchRows = OMNI_W4_PREFETCH_ROWS;

// Everything a tile kernel needs, with x already in padded-input order.
struct W4Job {
  const W4A16CpuWeights* w;
  const float* x;   // [M, padded_inputs]
  const float* xs;  // [M, num_segments]: Σ x over each segment
  float* y;         // [M, N]
  int64_t M;
};

void tile_scalar(const W4Job& job, int64_t t) {
  const W4A16CpuWeights& w = *job.w;
  const int64_t S = w.num_segments(), N = w.out_features, Kp = w.padded_inputs;
  const auto [codes, scales, zeros] = w4_tile_data(w, t);
  const int64_t lanes = std::min(kTile, N - t * kTile);
  for (int64_t m = 0; m < job.M; ++m) {
    const float* x = job.x + m * Kp;
    for (int64_t lane = 0; lane < lanes; ++lane) {
      float acc = 0.0f;
      for (int64_t s = 0; s < S; ++s) {
        float gacc = 0.0f;
        for (int64_t r = w.segment_rows[static_cast<size_t>(s)]; r < w.segment_rows[static_cast<size_t>(s) + 1]; ++r) {
          const uint32_t word = codes[r * kTile + lane];
          for (int j = 0; j < 8; ++j)
            gacc += x[8 * r + j] * static_cast<float>(static_cast<int>((word >> (4 * j)) & 0xfu) - 8);
        }
        const float sc = f16_to_f32(scales[s * kTile + lane]);
        acc += sc * gacc + sc * static_cast<float>(8 - zeros[s * kTile + lane]) * job.xs[m * S + s];
      }
      job.y[m * N + t * kTile + lane] = acc;
    }
  }
}

#if defined(OMNI_CPU_HAVE_AVX512)
// MB rows of x against one tile. Segments (4 KiB of codes for group 128) are read in order so DRAM sees one
// sequential stream; within a segment, (4 / Q) passes of Q vectors of 16 outputs each re-read it from L1, which
// lets MB grow to 8 rows per decode without running out of the 32 vector registers.
template <int MB, int Q>
void tile_avx512_rows(const W4Job& job, int64_t t, int64_t m0) {
  const W4A16CpuWeights& w = *job.w;
  const int64_t S = w.num_segments(), N = w.out_features, Kp = w.padded_inputs;
  const auto [codes, scales, zeros] = w4_tile_data(w, t);
  const float* x = job.x + m0 * Kp;
  // vpermps reads only the low 4 bits of each index lane: a nibble shifted down selects (u − 8) directly.
  const __m512 table = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
  alignas(64) float acc[MB][kTile] = {};
  for (int64_t s = 0; s < S; ++s) {
    const int64_t r0 = w.segment_rows[static_cast<size_t>(s)], r1 = w.segment_rows[static_cast<size_t>(s) + 1];
    for (int pass = 0; pass < 4 / Q; ++pass) {
      const int lane0 = pass * Q * 16;
      __m512 gacc[MB][Q];
      for (int m = 0; m < MB; ++m)
        for (int q = 0; q < Q; ++q) gacc[m][q] = _mm512_setzero_ps();
      for (int64_t r = r0; r < r1; ++r) {
        __m512i wv[Q];
        for (int q = 0; q < Q; ++q) {
          // The hardware prefetcher alone leaves this single stream latency-bound; run ahead of it.
          if (pass == 0)
            _mm_prefetch(reinterpret_cast<const char*>(codes + (r + kPrefetchRows) * kTile + 16 * q), OMNI_W4_PREFETCH_HINT);
          wv[q] = _mm512_load_si512(reinterpret_cast<const void*>(codes + r * kTile + lane0 + 16 * q));
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
          for (int q = 0; q < Q; ++q) {
            const __m512 v = _mm512_permutexvar_ps(_mm512_srli_epi32(wv[q], 4 * j), table);
            for (int m = 0; m < MB; ++m)
              gacc[m][q] = _mm512_fmadd_ps(_mm512_set1_ps(x[m * Kp + 8 * r + j]), v, gacc[m][q]);
          }
        }
      }
      for (int q = 0; q < Q; ++q) {
        const int lane = lane0 + 16 * q;
        const __m512 sc =
            _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + s * kTile + lane)));
        __m512 c = _mm512_setzero_ps();
        if (!w.symmetric) {
          const __m128i zb = _mm_load_si128(reinterpret_cast<const __m128i*>(zeros + s * kTile + lane));
          c = _mm512_mul_ps(sc, _mm512_sub_ps(_mm512_set1_ps(8.0f), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(zb))));
        }
        for (int m = 0; m < MB; ++m) {
          __m512 a = _mm512_fmadd_ps(gacc[m][q], sc, _mm512_load_ps(&acc[m][lane]));
          if (!w.symmetric) a = _mm512_fmadd_ps(c, _mm512_set1_ps(job.xs[(m0 + m) * S + s]), a);
          _mm512_store_ps(&acc[m][lane], a);
        }
      }
    }
  }
  for (int q = 0; q < 4; ++q) {
    const int64_t n0 = t * kTile + 16 * q, left = N - n0;
    if (left <= 0) break;
    const __mmask16 mask = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
    for (int m = 0; m < MB; ++m)
      _mm512_mask_storeu_ps(job.y + (m0 + m) * N + n0, mask, _mm512_load_ps(&acc[m][16 * q]));
  }
}

// One row of x (decode) against tiles t and t + 1 in lockstep: two concurrent DRAM streams per thread, where
// a single stream leaves the core waiting on memory latency.
void tile_pair_avx512_m1(const W4Job& job, int64_t t) {
  const W4A16CpuWeights& w = *job.w;
  const int64_t S = w.num_segments(), N = w.out_features;
  const W4TileData tiles[2] = {w4_tile_data(w, t), w4_tile_data(w, t + 1)};
  const float* x = job.x;
  const __m512 table = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
  __m512 acc[2][4];
  for (int p = 0; p < 2; ++p)
    for (int q = 0; q < 4; ++q) acc[p][q] = _mm512_setzero_ps();
  for (int64_t s = 0; s < S; ++s) {
    const int64_t r0 = w.segment_rows[static_cast<size_t>(s)], r1 = w.segment_rows[static_cast<size_t>(s) + 1];
    __m512 g[2][4];
    for (int p = 0; p < 2; ++p)
      for (int q = 0; q < 4; ++q) g[p][q] = _mm512_setzero_ps();
    for (int64_t r = r0; r < r1; ++r) {
      __m512i wv[2][4];
      for (int p = 0; p < 2; ++p) {
        for (int q = 0; q < 4; ++q) {
          _mm_prefetch(reinterpret_cast<const char*>(tiles[p].codes + (r + kPrefetchRows) * kTile + 16 * q),
                       OMNI_W4_PREFETCH_HINT);
          wv[p][q] = _mm512_load_si512(reinterpret_cast<const void*>(tiles[p].codes + r * kTile + 16 * q));
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m512 xb = _mm512_set1_ps(x[8 * r + j]);
        for (int p = 0; p < 2; ++p)
          for (int q = 0; q < 4; ++q)
            g[p][q] = _mm512_fmadd_ps(xb, _mm512_permutexvar_ps(_mm512_srli_epi32(wv[p][q], 4 * j), table), g[p][q]);
      }
    }
    for (int p = 0; p < 2; ++p)
      for (int q = 0; q < 4; ++q) {
        const __m512 sc = _mm512_cvtph_ps(
            _mm256_load_si256(reinterpret_cast<const __m256i*>(tiles[p].scales + s * kTile + 16 * q)));
        acc[p][q] = _mm512_fmadd_ps(g[p][q], sc, acc[p][q]);
        if (!w.symmetric) {
          const __m128i zb = _mm_load_si128(reinterpret_cast<const __m128i*>(tiles[p].zeros + s * kTile + 16 * q));
          const __m512 c =
              _mm512_mul_ps(sc, _mm512_sub_ps(_mm512_set1_ps(8.0f), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(zb))));
          acc[p][q] = _mm512_fmadd_ps(c, _mm512_set1_ps(job.xs[s]), acc[p][q]);
        }
      }
  }
  for (int p = 0; p < 2; ++p)
    for (int q = 0; q < 4; ++q) {
      const int64_t n0 = (t + p) * kTile + 16 * q, left = N - n0;
      if (left <= 0) break;
      const __mmask16 mask = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
      _mm512_mask_storeu_ps(job.y + n0, mask, acc[p][q]);
    }
}

void tile_avx512(const W4Job& job, int64_t t) {
  int64_t m = 0;
  for (; m + 8 <= job.M; m += 8) tile_avx512_rows<8, 1>(job, t, m);
  for (; m + 4 <= job.M; m += 4) tile_avx512_rows<4, 2>(job, t, m);
  for (; m + 2 <= job.M; m += 2) tile_avx512_rows<2, 4>(job, t, m);
  for (; m < job.M; ++m) tile_avx512_rows<1, 4>(job, t, m);
}
#endif

#if defined(OMNI_CPU_HAVE_AVX2)
// One row of x, 32 outputs (four 8-lane vectors) per pass; codes are converted to u and the kernel sums
// x·u, so the zero correction uses z itself: y = Σ s·(Σ x·u − z·Σ x).
void tile_avx2(const W4Job& job, int64_t t) {
  const W4A16CpuWeights& w = *job.w;
  const int64_t S = w.num_segments(), N = w.out_features, Kp = w.padded_inputs;
  const auto [codes, scales, zeros] = w4_tile_data(w, t);
  const __m256i low4 = _mm256_set1_epi32(0xf);
  for (int64_t m = 0; m < job.M; ++m) {
    const float* x = job.x + m * Kp;
    for (int lane0 = 0; lane0 < kTile; lane0 += 32) {
      __m256 acc[4];
      for (auto& a : acc) a = _mm256_setzero_ps();
      for (int64_t s = 0; s < S; ++s) {
        __m256 gacc[4];
        for (auto& g : gacc) g = _mm256_setzero_ps();
        const int64_t r1 = w.segment_rows[static_cast<size_t>(s) + 1];
        for (int64_t r = w.segment_rows[static_cast<size_t>(s)]; r < r1; ++r) {
          __m256i wv[4];
          for (int q = 0; q < 4; ++q)
            wv[q] = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes + r * kTile + lane0 + 8 * q));
#pragma GCC unroll 8
          for (int j = 0; j < 8; ++j) {
            const __m256 xv = _mm256_set1_ps(x[8 * r + j]);
            for (int q = 0; q < 4; ++q) {
              const __m256 u = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(wv[q], 4 * j), low4));
              gacc[q] = _mm256_fmadd_ps(xv, u, gacc[q]);
            }
          }
        }
        const __m256 xs = _mm256_set1_ps(job.xs[m * S + s]);
        for (int q = 0; q < 4; ++q) {
          const __m256 sc = _mm256_cvtph_ps(
              _mm_load_si128(reinterpret_cast<const __m128i*>(scales + s * kTile + lane0 + 8 * q)));
          const __m256 z = _mm256_cvtepi32_ps(
              _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(zeros + s * kTile + lane0 + 8 * q))));
          acc[q] = _mm256_fmadd_ps(sc, _mm256_fnmadd_ps(z, xs, gacc[q]), acc[q]);
        }
      }
      for (int q = 0; q < 4; ++q) {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, acc[q]);
        const int64_t n0 = t * kTile + lane0 + 8 * q;
        for (int64_t i = 0; i < 8 && n0 + i < N; ++i) job.y[m * N + n0 + i] = tmp[i];
      }
    }
  }
}
#endif

}  // namespace

namespace {
std::atomic<W4A16Activations> g_activations{W4A16Activations::Int16};
}  // namespace

void set_w4a16_cpu_activations(W4A16Activations a) { g_activations.store(a, std::memory_order_relaxed); }
W4A16Activations w4a16_cpu_activations() { return g_activations.load(std::memory_order_relaxed); }

void w4a16_matmul(float* y, const float* x, const W4A16CpuWeights& w, const float* bias, int64_t M) {
  const int64_t K = w.in_features, Kp = w.padded_inputs, N = w.out_features, S = w.num_segments();
  // Gather x into the packed input order when it is not the identity (act-order or padded groups).
  std::vector<float> gathered;
  const float* xp = x;
  if (!w.input_of_position.empty()) {
    gathered.resize(static_cast<size_t>(M * Kp));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t p = 0; p < Kp; ++p) {
        const int32_t k = w.input_of_position[static_cast<size_t>(p)];
        gathered[static_cast<size_t>(m * Kp + p)] = k < 0 ? 0.0f : x[m * K + k];
      }
    xp = gathered.data();
  }
  const CpuIsa isa = active_cpu_isa();
  // Each chunk gets at least ~64K weights × rows of work: enough that handing it to a (spinning) worker is
  // cheap, small enough that a decode layer of a small model (16 tiles at 1024 outputs) splits into chunks that
  // balance between threads.
  const int64_t tile_work = kTile * Kp * M;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, tile_work));
  auto add_bias = [&](int64_t t) { add_bias_columns(y, bias, M, N, t * kTile, std::min(N, (t + 1) * kTile)); };
  if (M >= kW4PrefillMinRows) {
    w4a16_prefill(y, xp, w, M);
    if (bias) parallel_for(0, w.num_tiles, std::max<int64_t>(1, grain), [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) add_bias(t);
    });
    return;
  }
  if (w4a16_cpu_activations() == W4A16Activations::Int16) {
    // Reused: decode calls this hundreds of times per token. Workers reach it through `rows`; naming the
    // thread_local inside the task would give each worker its own, empty, copy.
    thread_local W4Int16Rows rows_storage;
    W4Int16Rows& rows = rows_storage;
    quantize_w4_rows(rows, xp, w, M);
    parallel_for(0, w.num_tiles, grain, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        w4a16_tile_int16(rows, w, y, M, t, isa);
        add_bias(t);
      }
    });
    return;
  }
  std::vector<float> xs(static_cast<size_t>(M * S));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t s = 0; s < S; ++s) {
      float sum = 0.0f;
      for (int64_t p = 8 * w.segment_rows[static_cast<size_t>(s)]; p < 8 * w.segment_rows[static_cast<size_t>(s) + 1]; ++p)
        sum += xp[m * Kp + p];
      xs[static_cast<size_t>(m * S + s)] = sum;
    }
  const W4Job job{&w, xp, xs.data(), y, M};
#if defined(OMNI_CPU_HAVE_AVX512)
  if (M == 1 && isa == CpuIsa::Avx512) {  // decode: tiles in pairs, two memory streams per thread
    const int64_t pairs = (w.num_tiles + 1) / 2;
    parallel_for(0, pairs, std::max<int64_t>(1, grain / 2), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t t = 2 * p;
        if (t + 1 < w.num_tiles) {
          tile_pair_avx512_m1(job, t);
          add_bias(t);
          add_bias(t + 1);
        } else {
          tile_avx512(job, t);
          add_bias(t);
        }
      }
    });
    return;
  }
#endif
  parallel_for(0, w.num_tiles, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      switch (isa) {
#if defined(OMNI_CPU_HAVE_AVX512)
        case CpuIsa::Avx512: tile_avx512(job, t); break;
#endif
#if defined(OMNI_CPU_HAVE_AVX2)
        case CpuIsa::Avx2: tile_avx2(job, t); break;
#endif
        default: tile_scalar(job, t);
      }
      add_bias(t);
    }
  });
}

}  // namespace omni
