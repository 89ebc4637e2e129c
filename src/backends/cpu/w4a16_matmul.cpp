// Layout: outputs are cut into tiles of 64; a tile stores, for every word row r (inputs 8r..8r+7), the 64
// GPTQ words of its outputs side by side, so a kernel reads one tile as a single sequential stream and one
// 64-byte load gives 16 outputs × 8 inputs. Scales and zero points sit in small per-tile tables. Inputs are
// taken in segments that share one scale (one group); the kernel sums x·(u − 8) over a segment in registers
// and applies the scale once per segment:
//   y[n] = Σ_seg s[seg, n] · (Σ_{k∈seg} x[k]·(u[k, n] − 8) + (8 − z[seg, n]) · Σ_{k∈seg} x[k])
// Act-order checkpoints (g_idx) are handled by ordering inputs by group at pack time and gathering x in the
// same order at run time; groups are padded to multiples of 8 inputs with x = 0.
#include "backends/cpu/w4a16_matmul.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/simd.h"
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
constexpr uint32_t kPadWord = 0x88888888u;  // code 8 everywhere: (u − 8) = 0 for padded lanes

void validate(const GroupedIntWeight& w) {
  OMNI_CHECK(w.bits == 4, "W4A16 CPU matmul: ", w.bits, "-bit weights are not supported yet (expected bits = 4)");
  const int64_t K = w.in_features, N = w.out_features;
  OMNI_CHECK(K > 0 && N > 0, "W4A16 weight: in_features and out_features must be positive, found K = ", K,
             ", N = ", N);
  OMNI_CHECK(K % 8 == 0, "W4A16 weight: in_features must be a multiple of 8 for 4-bit packing, found ", K);
  OMNI_CHECK(w.group_size > 0, "W4A16 weight: group_size must be positive (K for per-channel), found ",
             w.group_size);
  const int64_t G = w.num_groups();
  auto check = [](const Tensor& t, const char* name, DType dt, const Shape& shape) {
    OMNI_CHECK(t.defined(), "W4A16 weight: ", name, " is missing");
    OMNI_CHECK(t.device() == Device::CPU, "W4A16 weight: ", name, " must be on the CPU");
    OMNI_CHECK(t.dtype() == dt && t.shape() == shape, "W4A16 weight: ", name, " expected ", dtype_name(dt), " ",
               shape_str(shape), ", found ", dtype_name(t.dtype()), " ", shape_str(t.shape()));
  };
  check(w.qweight, "qweight", DType::I32, {K / 8, N});
  check(w.scales, "scales", DType::F16, {G, N});
  check(w.zeros, "zeros", DType::U8, {G, N});
  if (w.g_idx.defined()) {
    check(w.g_idx, "g_idx", DType::I32, {K});
    const int32_t* gi = w.g_idx.data<int32_t>();
    for (int64_t k = 0; k < K; ++k)
      OMNI_CHECK(gi[k] >= 0 && gi[k] < G, "W4A16 weight: g_idx[", k, "] = ", gi[k], " is outside [0, ", G, ")");
  }
  const uint8_t* z = w.zeros.data<uint8_t>();
  for (int64_t i = 0; i < G * N; ++i)
    OMNI_CHECK(z[i] <= 15, "W4A16 weight: zero point ", int{z[i]}, " at index ", i, " is outside 0..15");
}

}  // namespace

W4A16CpuWeights pack_w4a16_cpu(const GroupedIntWeight& w) {
  validate(w);
  const int64_t K = w.in_features, N = w.out_features, G = w.num_groups();
  const int32_t* gi = w.g_idx.defined() ? w.g_idx.data<int32_t>() : nullptr;
  auto group_of = [&](int64_t k) -> int64_t { return gi ? gi[k] : k / w.group_size; };

  W4A16CpuWeights out;
  out.in_features = K;
  out.out_features = N;
  out.num_tiles = (N + kTile - 1) / kTile;

  // Order inputs by group (stable), then pad each group to a multiple of 8 so a word row never mixes groups.
  bool identity = true;
  for (int64_t k = 0; k < K && identity; ++k) identity = group_of(k) == k / w.group_size;
  identity = identity && w.group_size % 8 == 0;
  std::vector<int64_t> segment_group;  // group of each segment
  if (identity) {
    out.padded_inputs = K;
    for (int64_t g = 0; g < G; ++g) {
      out.segment_rows.push_back(g * w.group_size / 8);
      segment_group.push_back(g);
    }
    out.segment_rows.push_back(K / 8);
  } else {
    std::vector<std::vector<int32_t>> members(static_cast<size_t>(G));
    for (int64_t k = 0; k < K; ++k) members[static_cast<size_t>(group_of(k))].push_back(static_cast<int32_t>(k));
    for (int64_t g = 0; g < G; ++g) {
      auto& mem = members[static_cast<size_t>(g)];
      if (mem.empty()) continue;
      out.segment_rows.push_back(static_cast<int64_t>(out.input_of_position.size()) / 8);
      segment_group.push_back(g);
      out.input_of_position.insert(out.input_of_position.end(), mem.begin(), mem.end());
      while (out.input_of_position.size() % 8 != 0) out.input_of_position.push_back(-1);
    }
    out.padded_inputs = static_cast<int64_t>(out.input_of_position.size());
    out.segment_rows.push_back(out.padded_inputs / 8);
  }

  const int64_t rows = out.padded_inputs / 8, S = out.num_segments(), T = out.num_tiles;
  out.codes = Tensor::empty({T, rows, kTile}, DType::I32);
  out.scales = Tensor::empty({T, S, kTile}, DType::F16);
  out.zeros = Tensor::empty({T, S, kTile}, DType::U8);
  const uint32_t* qw = w.qweight.data<uint32_t>();
  const uint16_t* sc = w.scales.data<uint16_t>();
  const uint8_t* zp = w.zeros.data<uint8_t>();
  uint32_t* codes = out.codes.data<uint32_t>();
  uint16_t* scales = out.scales.data<uint16_t>();
  uint8_t* zeros = out.zeros.data<uint8_t>();

  auto code_of = [&](int64_t k, int64_t n) -> uint32_t { return (qw[(k / 8) * N + n] >> (4 * (k % 8))) & 0xfu; };
  parallel_for(0, T, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        uint32_t* dst = codes + (t * rows + r) * kTile;
        for (int64_t lane = 0; lane < kTile; ++lane) {
          const int64_t n = t * kTile + lane;
          if (n >= N) {
            dst[lane] = kPadWord;
          } else if (identity) {
            dst[lane] = qw[r * N + n];
          } else {
            uint32_t word = 0;
            for (int64_t j = 0; j < 8; ++j) {
              const int32_t k = out.input_of_position[static_cast<size_t>(8 * r + j)];
              word |= (k < 0 ? 8u : code_of(k, n)) << (4 * j);
            }
            dst[lane] = word;
          }
        }
      }
      for (int64_t s = 0; s < S; ++s)
        for (int64_t lane = 0; lane < kTile; ++lane) {
          const int64_t n = t * kTile + lane;
          const int64_t src = segment_group[static_cast<size_t>(s)] * N + n;
          scales[(t * S + s) * kTile + lane] = n < N ? sc[src] : uint16_t{0};
          zeros[(t * S + s) * kTile + lane] = n < N ? zp[src] : uint8_t{8};
        }
    }
  });
  out.symmetric = std::all_of(zeros, zeros + T * S * kTile, [](uint8_t z) { return z == 8; });
  return out;
}

namespace {

// Everything a tile kernel needs, with x already in padded-input order.
struct W4Job {
  const W4A16CpuWeights* w;
  const float* x;   // [M, padded_inputs]
  const float* xs;  // [M, num_segments]: Σ x over each segment
  float* y;         // [M, N]
  int64_t M;
};

// The packed codes, scales and zero points of tile t (kTile outputs).
struct TileData {
  const uint32_t* codes;   // [rows][kTile] words
  const uint16_t* scales;  // [S][kTile] f16
  const uint8_t* zeros;    // [S][kTile]
};

TileData tile_data(const W4A16CpuWeights& w, int64_t t) {
  const int64_t rows = w.padded_inputs / 8, S = w.num_segments();
  return {w.codes.data<uint32_t>() + t * rows * kTile, w.scales.data<uint16_t>() + t * S * kTile,
          w.zeros.data<uint8_t>() + t * S * kTile};
}

void tile_scalar(const W4Job& job, int64_t t) {
  const W4A16CpuWeights& w = *job.w;
  const int64_t S = w.num_segments(), N = w.out_features, Kp = w.padded_inputs;
  const auto [codes, scales, zeros] = tile_data(w, t);
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
  const auto [codes, scales, zeros] = tile_data(w, t);
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
  const TileData tiles[2] = {tile_data(w, t), tile_data(w, t + 1)};
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
  const auto [codes, scales, zeros] = tile_data(w, t);
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
  std::vector<float> xs(static_cast<size_t>(M * S));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t s = 0; s < S; ++s) {
      float sum = 0.0f;
      for (int64_t p = 8 * w.segment_rows[static_cast<size_t>(s)]; p < 8 * w.segment_rows[static_cast<size_t>(s) + 1]; ++p)
        sum += xp[m * Kp + p];
      xs[static_cast<size_t>(m * S + s)] = sum;
    }
  const W4Job job{&w, xp, xs.data(), y, M};
  const CpuIsa isa = active_cpu_isa();
  // Waking the pool costs tens of microseconds; small layers (decode of a small model) run faster on one thread,
  // so each chunk gets at least ~256K weight-rows of work.
  const int64_t tile_work = kTile * Kp * M;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, tile_work));
  auto add_bias = [&](int64_t t) {
    if (bias)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = t * kTile; n < std::min(N, (t + 1) * kTile); ++n) y[m * N + n] += bias[n];
  };
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
