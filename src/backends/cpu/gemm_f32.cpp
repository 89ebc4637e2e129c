#include "backends/cpu/gemm_f32.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/simd.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

// Goto-style blocking: a KC × NC block of op(B) is packed once and shared by all threads (it lives in L2/L3),
// each task packs an MC × KC block of op(A) (L2) and walks micro-tiles MR × NR whose B micro-panel (KC × NR)
// stays in L1.
constexpr int64_t kKc = 256;
constexpr int64_t kNc = 1024;
constexpr int64_t kMcPanels = 12;  // MC = 12 micro-panels of MR rows

// Micro-kernels: C[MR, NR] (+)= Ap[kc][MR] · Bp[kc][NR], C with row stride ldc.
struct KernelScalar {
  static constexpr int MR = 4, NR = 16;
  static void run(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool acc) {
    float t[MR][NR] = {};
    for (int64_t p = 0; p < kc; ++p, ap += MR, bp += NR)
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) t[i][j] += ap[i] * bp[j];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
  }
};

#if defined(OMNI_CPU_HAVE_AVX2)
struct KernelAvx2 {  // 12 accumulators of 8 lanes + 2 B vectors + 1 broadcast fit the 16 ymm registers
  static constexpr int MR = 6, NR = 16;
  static void run(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool acc) {
    __m256 t[MR][2];
    for (int i = 0; i < MR; ++i) t[i][0] = t[i][1] = _mm256_setzero_ps();
    for (int64_t p = 0; p < kc; ++p, ap += MR, bp += NR) {
      const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
      for (int i = 0; i < MR; ++i) {
        const __m256 a = _mm256_broadcast_ss(ap + i);
        t[i][0] = _mm256_fmadd_ps(a, b0, t[i][0]);
        t[i][1] = _mm256_fmadd_ps(a, b1, t[i][1]);
      }
    }
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      if (acc) {
        t[i][0] = _mm256_add_ps(t[i][0], _mm256_loadu_ps(ci));
        t[i][1] = _mm256_add_ps(t[i][1], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, t[i][0]);
      _mm256_storeu_ps(ci + 8, t[i][1]);
    }
  }
};
#endif

#if defined(OMNI_CPU_HAVE_AVX512)
struct KernelAvx512 {  // 24 accumulators of 16 lanes + 2 B vectors + 1 broadcast of the 32 zmm registers
  static constexpr int MR = 12, NR = 32;
  static void run(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool acc) {
    __m512 t[MR][2];
    for (int i = 0; i < MR; ++i) t[i][0] = t[i][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; ++p, ap += MR, bp += NR) {
      const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
      for (int i = 0; i < MR; ++i) {
        const __m512 a = _mm512_set1_ps(ap[i]);
        t[i][0] = _mm512_fmadd_ps(a, b0, t[i][0]);
        t[i][1] = _mm512_fmadd_ps(a, b1, t[i][1]);
      }
    }
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      if (acc) {
        t[i][0] = _mm512_add_ps(t[i][0], _mm512_loadu_ps(ci));
        t[i][1] = _mm512_add_ps(t[i][1], _mm512_loadu_ps(ci + 16));
      }
      _mm512_storeu_ps(ci, t[i][0]);
      _mm512_storeu_ps(ci + 16, t[i][1]);
    }
  }
};
#endif

struct GemmArgs {
  bool trans_a, trans_b;
  int64_t M, N, K;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float* C;
  int64_t ldc;
  bool accumulate;
};

// op(A)[i, p] for rows [i0, i0 + mr) and depth [p0, p0 + kc) into ap[p][MR], zero rows past mr.
template <int MR>
void pack_a(float* ap, const GemmArgs& g, int64_t i0, int64_t mr, int64_t p0, int64_t kc) {
  if (g.trans_a) {  // A stored [K, M]: a row of A is a column of op(A), contiguous along i
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = g.A + (p0 + p) * g.lda + i0;
      float* dst = ap + p * MR;
      for (int64_t i = 0; i < mr; ++i) dst[i] = src[i];
      for (int64_t i = mr; i < MR; ++i) dst[i] = 0.f;
    }
  } else {
    for (int64_t i = 0; i < MR; ++i) {
      if (i >= mr) {
        for (int64_t p = 0; p < kc; ++p) ap[p * MR + i] = 0.f;
        continue;
      }
      const float* src = g.A + (i0 + i) * g.lda + p0;
      for (int64_t p = 0; p < kc; ++p) ap[p * MR + i] = src[p];
    }
  }
}

// op(B)[p, j] for depth [p0, p0 + kc) and columns [j0, j0 + nr) into bp[p][NR], zero columns past nr.
template <int NR>
void pack_b(float* bp, const GemmArgs& g, int64_t p0, int64_t kc, int64_t j0, int64_t nr) {
  if (g.trans_b) {  // B stored [N, K]: contiguous along p for a fixed column j
    for (int64_t j = 0; j < NR; ++j) {
      if (j >= nr) {
        for (int64_t p = 0; p < kc; ++p) bp[p * NR + j] = 0.f;
        continue;
      }
      const float* src = g.B + (j0 + j) * g.ldb + p0;
      for (int64_t p = 0; p < kc; ++p) bp[p * NR + j] = src[p];
    }
  } else {
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = g.B + (p0 + p) * g.ldb + j0;
      float* dst = bp + p * NR;
      for (int64_t j = 0; j < nr; ++j) dst[j] = src[j];
      for (int64_t j = nr; j < NR; ++j) dst[j] = 0.f;
    }
  }
}

// pack_b(bp, p0, kc, j0, nr) writes the KC × NR micro-panel of op(B) starting at (p0, j0); A and C come from g
// (g.B is not read here).
template <class Kernel, class PackB>
void gemm_blocked(const GemmArgs& g, const PackB& pack_b_panel) {
  constexpr int MR = Kernel::MR, NR = Kernel::NR;
  constexpr int64_t kMc = kMcPanels * MR;
  // Reused across calls (attention calls small products often). Workers reach it through `bp_all`: naming a
  // thread_local inside the tasks would give each worker its own, empty, vector.
  thread_local std::vector<float> bpack;
  const int threads = num_threads();
  for (int64_t jc = 0; jc < g.N; jc += kNc) {
    const int64_t nc = std::min(kNc, g.N - jc);
    const int64_t n_panels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < g.K; pc += kKc) {
      const int64_t kc = std::min(kKc, g.K - pc);
      const bool acc = g.accumulate || pc > 0;
      bpack.resize(std::max(bpack.size(), static_cast<size_t>(n_panels * kc * NR)));
      float* const bp_all = bpack.data();
      parallel_for(0, n_panels, 4, [&](int64_t q0, int64_t q1) {
        for (int64_t q = q0; q < q1; ++q)
          pack_b_panel(bp_all + q * kc * NR, pc, kc, jc + q * NR, std::min<int64_t>(NR, nc - q * NR));
      });
      // Tasks: row blocks × column slices, enough of them to keep every thread busy when M is small.
      const int64_t m_blocks = (g.M + kMc - 1) / kMc;
      const int64_t want_slices = std::max<int64_t>(1, (4 * threads + m_blocks - 1) / m_blocks);
      const int64_t slices = std::min(want_slices, std::max<int64_t>(1, n_panels / 4));
      const int64_t panels_per_slice = (n_panels + slices - 1) / slices;
      parallel_for(0, m_blocks * slices, 1, [&](int64_t t0, int64_t t1) {
        thread_local std::vector<float> apack;
        apack.resize(static_cast<size_t>(kMc * kKc));
        alignas(64) float edge[MR * NR];
        for (int64_t task = t0; task < t1; ++task) {
          const int64_t ib = task / slices, sl = task % slices;
          const int64_t i0 = ib * kMc, mc = std::min(kMc, g.M - i0);
          const int64_t q_begin = sl * panels_per_slice, q_end = std::min(n_panels, q_begin + panels_per_slice);
          if (q_begin >= q_end) continue;
          const int64_t m_panels = (mc + MR - 1) / MR;
          for (int64_t r = 0; r < m_panels; ++r)
            pack_a<MR>(apack.data() + r * kc * MR, g, i0 + r * MR, std::min<int64_t>(MR, mc - r * MR), pc, kc);
          for (int64_t q = q_begin; q < q_end; ++q) {
            const int64_t j = jc + q * NR, nr = std::min<int64_t>(NR, nc - q * NR);
            const float* bp = bp_all + q * kc * NR;
            for (int64_t r = 0; r < m_panels; ++r) {
              const int64_t i = i0 + r * MR, mr = std::min<int64_t>(MR, mc - r * MR);
              const float* ap = apack.data() + r * kc * MR;
              float* c = g.C + i * g.ldc + j;
              if (mr == MR && nr == NR) {
                Kernel::run(kc, ap, bp, c, g.ldc, acc);
              } else {  // partial tile: compute the full tile aside, keep the valid part
                Kernel::run(kc, ap, bp, edge, NR, false);
                for (int64_t ii = 0; ii < mr; ++ii)
                  for (int64_t jj = 0; jj < nr; ++jj)
                    c[ii * g.ldc + jj] = acc ? c[ii * g.ldc + jj] + edge[ii * NR + jj] : edge[ii * NR + jj];
              }
            }
          }
        }
      });
    }
  }
}

// The product with a panel source. Unlike gemm_blocked, op(B) is never materialised whole: each task owns kGroup
// output columns, converts their KC × kGroup block of B into L1/L2-sized micro-panels right before use, and runs
// every row of A against them (A is packed once, shared by all tasks). Converting B is then done exactly once
// per call and the f32 copy of B never travels through DRAM.
template <class Kernel>
void gemm_panels(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const GemmPanelSource& B, float* C,
                 int64_t ldc) {
  constexpr int MR = Kernel::MR, NR = Kernel::NR;
  constexpr int64_t kGroup = 64;  // output columns per task
  static_assert(kGroup % NR == 0, "a task's columns must be whole micro-panels");
  const int64_t m_panels = (M + MR - 1) / MR, k_blocks = (K + kKc - 1) / kKc;
  // Ap[block][panel][kc][MR]: block b holds depths [b·KC, b·KC + kc).
  thread_local std::vector<float> apack_storage;
  apack_storage.resize(static_cast<size_t>(m_panels * MR * k_blocks * kKc));
  float* const apack = apack_storage.data();
  const GemmArgs g{false, true, M, N, K, A, lda, nullptr, 0, C, ldc, false};
  parallel_for(0, k_blocks * m_panels, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / m_panels, r = t % m_panels, pc = b * kKc, kc = std::min(kKc, K - pc);
      pack_a<MR>(apack + (b * m_panels + r) * kKc * MR, g, r * MR, std::min<int64_t>(MR, M - r * MR), pc, kc);
    }
  });
  const int64_t groups = (N + kGroup - 1) / kGroup;
  parallel_for(0, groups, 1, [&](int64_t g0, int64_t g1) {
    alignas(64) float bpanel[kGroup / NR][kKc * NR];
    alignas(64) float edge[MR * NR];
    for (int64_t grp = g0; grp < g1; ++grp) {
      const int64_t j_begin = grp * kGroup, j_end = std::min(N, j_begin + kGroup);
      const int64_t panels = (j_end - j_begin + NR - 1) / NR;
      for (int64_t b = 0; b < k_blocks; ++b) {
        const int64_t pc = b * kKc, kc = std::min(kKc, K - pc);
        for (int64_t q = 0; q < panels; ++q)
          B.pack(bpanel[q], NR, pc, kc, j_begin + q * NR, std::min<int64_t>(NR, j_end - j_begin - q * NR));
        for (int64_t r = 0; r < m_panels; ++r) {
          const int64_t i = r * MR, mr = std::min<int64_t>(MR, M - i);
          const float* ap = apack + (b * m_panels + r) * kKc * MR;
          for (int64_t q = 0; q < panels; ++q) {
            const int64_t j = j_begin + q * NR, nr = std::min<int64_t>(NR, j_end - j);
            float* c = C + i * ldc + j;
            if (mr == MR && nr == NR) {
              Kernel::run(kc, ap, bpanel[q], c, ldc, b > 0);
            } else {
              Kernel::run(kc, ap, bpanel[q], edge, NR, false);
              for (int64_t ii = 0; ii < mr; ++ii)
                for (int64_t jj = 0; jj < nr; ++jj)
                  c[ii * ldc + jj] = b > 0 ? c[ii * ldc + jj] + edge[ii * NR + jj] : edge[ii * NR + jj];
            }
          }
        }
      }
    }
  });
}

// Calls f with a default-constructed micro-kernel of the active SIMD path.
template <class F>
void dispatch(F&& f) {
  switch (active_cpu_isa()) {
#if defined(OMNI_CPU_HAVE_AVX512)
    case CpuIsa::Avx512: f(KernelAvx512{}); return;
#endif
#if defined(OMNI_CPU_HAVE_AVX2)
    case CpuIsa::Avx2: f(KernelAvx2{}); return;
#endif
    default: f(KernelScalar{}); return;
  }
}

}  // namespace

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
              const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, static_cast<size_t>(N) * sizeof(float));
    return;
  }
  const GemmArgs g{trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate};
  dispatch([&](auto kernel) {
    constexpr int NR = decltype(kernel)::NR;
    gemm_blocked<decltype(kernel)>(g, [&](float* bp, int64_t p0, int64_t kc, int64_t j0, int64_t nr) {
      pack_b<NR>(bp, g, p0, kc, j0, nr);
    });
  });
}

int gemm_f32_panel_width() {
  int width = 0;
  dispatch([&](auto kernel) { width = decltype(kernel)::NR; });
  return width;
}

void gemm_f32_packed_b(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const GemmPanelSource& B,
                       float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, static_cast<size_t>(N) * sizeof(float));
    return;
  }
  dispatch([&](auto kernel) { gemm_panels<decltype(kernel)>(M, N, K, A, lda, B, C, ldc); });
}

}  // namespace omni
