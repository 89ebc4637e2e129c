#include "backends/cpu/attention_backward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backends/cpu/gemm_f32.h"
#include "backends/cpu/vector_ops.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

template <class T>
T dot(const T* a, const T* b, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    return dot_f32(a, b, n);
  } else {
    T s = 0;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
  }
}

template <class T>
void axpy(T* y, T alpha, const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    axpy_f32(y, alpha, x, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  }
}

void check_heads(int64_t Hq, int64_t Hkv) {
  OMNI_CHECK(Hkv > 0 && Hq % Hkv == 0, "attention: ", Hq, " query heads are not a multiple of ", Hkv,
             " kv heads");
}

// The reference: one (query, key) pair at a time, as the inference kernel (attention.cpp) does it.
template <class T>
void attention_forward_reference(T* out, T* lse, const T* q, const T* k, const T* v, int64_t B, int64_t seq,
                                 int64_t Hq, int64_t Hkv, int64_t hd, bool causal) {
  const int64_t group = Hq / Hkv;
  const T scale = T(1) / std::sqrt(static_cast<T>(hd));
  parallel_for(0, B * seq * Hq, 1, [&](int64_t i0, int64_t i1) {
    std::vector<T> scores(static_cast<size_t>(seq));
    std::vector<T> acc(static_cast<size_t>(hd));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t h = i % Hq, t = (i / Hq) % seq, b = i / (Hq * seq);
      const int64_t hk = h / group;
      const T* qv = q + ((b * seq + t) * Hq + h) * hd;
      const int64_t keys = causal ? t + 1 : seq;
      T max_score = -INFINITY;
      for (int64_t j = 0; j < keys; ++j) {
        const T s = dot(qv, k + ((b * seq + j) * Hkv + hk) * hd, hd) * scale;
        scores[static_cast<size_t>(j)] = s;
        max_score = std::max(max_score, s);
      }
      T sum = 0;
      for (int64_t j = 0; j < keys; ++j) {
        const T e = std::exp(scores[static_cast<size_t>(j)] - max_score);
        scores[static_cast<size_t>(j)] = e;
        sum += e;
      }
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t j = 0; j < keys; ++j) axpy(acc.data(), scores[static_cast<size_t>(j)], v + ((b * seq + j) * Hkv + hk) * hd, hd);
      T* o = out + ((b * seq + t) * Hq + h) * hd;
      const T inv = T(1) / sum;
      for (int64_t d = 0; d < hd; ++d) o[d] = acc[static_cast<size_t>(d)] * inv;
      lse[(b * seq + t) * Hq + h] = max_score + std::log(sum);
    }
  });
}

template <class T>
void attention_backward_reference(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                                  const T* out, const T* lse, int64_t B, int64_t seq, int64_t Hq, int64_t Hkv,
                                  int64_t hd, bool causal) {
  const int64_t group = Hq / Hkv;
  const T scale = T(1) / std::sqrt(static_cast<T>(hd));
  // One task per (sample, kv head): it owns the dk/dv rows of that kv head and the dq rows of the query heads
  // sharing it, so no two tasks write the same memory.
  parallel_for(0, B * Hkv, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / Hkv, hk = i % Hkv;
      for (int64_t j = 0; j < seq; ++j) {
        std::memset(dk + ((b * seq + j) * Hkv + hk) * hd, 0, static_cast<size_t>(hd) * sizeof(T));
        std::memset(dv + ((b * seq + j) * Hkv + hk) * hd, 0, static_cast<size_t>(hd) * sizeof(T));
      }
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t t = 0; t < seq; ++t) {
          const int64_t row = (b * seq + t) * Hq + h;
          const T* qt = q + row * hd;
          const T* dot_t = dout + row * hd;
          T* dqt = dq + row * hd;
          std::memset(dqt, 0, static_cast<size_t>(hd) * sizeof(T));
          const T delta = dot(dot_t, out + row * hd, hd);  // Σ_j P_tj dP_tj
          const T l = lse[row];
          for (int64_t j = 0; j < (causal ? t + 1 : seq); ++j) {
            const int64_t kv_row = (b * seq + j) * Hkv + hk;
            const T* kj = k + kv_row * hd;
            const T p = std::exp(dot(qt, kj, hd) * scale - l);
            const T dp = dot(dot_t, v + kv_row * hd, hd);
            const T ds = p * (dp - delta) * scale;
            axpy(dqt, ds, kj, hd);
            axpy(dk + kv_row * hd, ds, qt, hd);
            axpy(dv + kv_row * hd, p, dot_t, hd);
          }
        }
      }
    }
  });
}

// The f32 path: tiles of kTile queries against all keys they may see, each product a small gemm_f32 (run
// serially inside the task). The masked upper part of the diagonal tile is computed and discarded, which costs
// at most kTile/2 extra keys per query but runs at GEMM speed.
constexpr int64_t kTile = 96;  // a multiple of the micro-kernel tiles (12 rows, 32 columns) keeps edges rare

void attention_forward_f32(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                           int64_t seq, int64_t Hq, int64_t Hkv, int64_t hd, bool causal) {
  const int64_t group = Hq / Hkv, ldq = Hq * hd, ldk = Hkv * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  parallel_for(0, B * Hq, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> p(static_cast<size_t>(kTile * seq));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / Hq, h = i % Hq, hk = h / group;
      const float* k0 = k + b * seq * ldk + hk * hd;
      const float* v0 = v + b * seq * ldk + hk * hd;
      for (int64_t t0 = 0; t0 < seq; t0 += kTile) {
        const int64_t m = std::min(kTile, seq - t0), keys = causal ? t0 + m : seq;
        const float* qt = q + (b * seq + t0) * ldq + h * hd;
        gemm_f32(false, true, m, keys, hd, qt, ldq, k0, ldk, p.data(), keys, false);
        for (int64_t r = 0; r < m; ++r) {  // row softmax over the keys 0..seen−1 the row sees
          const int64_t t = t0 + r, seen = causal ? t + 1 : seq;
          float* row = p.data() + r * keys;
          float mx = -INFINITY;
          for (int64_t j = 0; j < seen; ++j) {
            row[j] *= scale;
            mx = std::max(mx, row[j]);
          }
          float sum = 0.f;
          for (int64_t j = 0; j < seen; ++j) {
            row[j] = std::exp(row[j] - mx);
            sum += row[j];
          }
          const float inv = 1.0f / sum;
          for (int64_t j = 0; j < seen; ++j) row[j] *= inv;
          for (int64_t j = seen; j < keys; ++j) row[j] = 0.f;
          lse[(b * seq + t) * Hq + h] = mx + std::log(sum);
        }
        gemm_f32(false, false, m, hd, keys, p.data(), keys, v0, ldk, out + (b * seq + t0) * ldq + h * hd, ldq, false);
      }
    }
  });
}

void attention_backward_f32(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                            const float* v, const float* out, const float* lse, int64_t B, int64_t seq, int64_t Hq,
                            int64_t Hkv, int64_t hd, bool causal) {
  const int64_t group = Hq / Hkv, ldq = Hq * hd, ldk = Hkv * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One task per (sample, kv head): it owns that kv head's dk/dv rows and the dq rows of its query heads.
  parallel_for(0, B * Hkv, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> p(static_cast<size_t>(kTile * seq)), dp(static_cast<size_t>(kTile * seq));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / Hkv, hk = i % Hkv;
      const float* k0 = k + b * seq * ldk + hk * hd;
      const float* v0 = v + b * seq * ldk + hk * hd;
      float* dk0 = dk + b * seq * ldk + hk * hd;
      float* dv0 = dv + b * seq * ldk + hk * hd;
      for (int64_t j = 0; j < seq; ++j) {
        std::memset(dk0 + j * ldk, 0, static_cast<size_t>(hd) * sizeof(float));
        std::memset(dv0 + j * ldk, 0, static_cast<size_t>(hd) * sizeof(float));
      }
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t t0 = 0; t0 < seq; t0 += kTile) {
          const int64_t m = std::min(kTile, seq - t0), keys = causal ? t0 + m : seq;
          const int64_t row0 = (b * seq + t0) * ldq + h * hd;
          // P recomputed from the saved log-sum-exp.
          gemm_f32(false, true, m, keys, hd, q + row0, ldq, k0, ldk, p.data(), keys, false);
          for (int64_t r = 0; r < m; ++r) {
            const int64_t t = t0 + r, seen = causal ? t + 1 : seq;
            const float l = lse[(b * seq + t) * Hq + h];
            float* row = p.data() + r * keys;
            for (int64_t j = 0; j < seen; ++j) row[j] = std::exp(row[j] * scale - l);
            for (int64_t j = seen; j < keys; ++j) row[j] = 0.f;
          }
          gemm_f32(true, false, keys, hd, m, p.data(), keys, dout + row0, ldq, dv0, ldk, true);     // dv += Pᵀ·dO
          gemm_f32(false, true, m, keys, hd, dout + row0, ldq, v0, ldk, dp.data(), keys, false);    // dP = dO·vᵀ
          for (int64_t r = 0; r < m; ++r) {  // dS = P ⊙ (dP − dO·O) · scale, in place of dP
            const float delta = dot_f32(dout + row0 + r * ldq, out + row0 + r * ldq, hd);
            const float* pr = p.data() + r * keys;
            float* dr = dp.data() + r * keys;
            for (int64_t j = 0; j < keys; ++j) dr[j] = pr[j] * (dr[j] - delta) * scale;
          }
          gemm_f32(false, false, m, hd, keys, dp.data(), keys, k0, ldk, dq + row0, ldq, false);     // dq = dS·k
          gemm_f32(true, false, keys, hd, m, dp.data(), keys, q + row0, ldq, dk0, ldk, true);       // dk += dSᵀ·q
        }
      }
    }
  });
}

}  // namespace

template <class T>
void attention_forward_train(T* out, T* lse, const T* q, const T* k, const T* v, int64_t B, int64_t seq, int64_t Hq,
                             int64_t Hkv, int64_t hd, bool causal) {
  check_heads(Hq, Hkv);
  if constexpr (std::is_same_v<T, float>)
    attention_forward_f32(out, lse, q, k, v, B, seq, Hq, Hkv, hd, causal);
  else
    attention_forward_reference(out, lse, q, k, v, B, seq, Hq, Hkv, hd, causal);
}

template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, int64_t B, int64_t seq, int64_t Hq, int64_t Hkv, int64_t hd, bool causal) {
  check_heads(Hq, Hkv);
  if constexpr (std::is_same_v<T, float>)
    attention_backward_f32(dq, dk, dv, dout, q, k, v, out, lse, B, seq, Hq, Hkv, hd, causal);
  else
    attention_backward_reference(dq, dk, dv, dout, q, k, v, out, lse, B, seq, Hq, Hkv, hd, causal);
}

template void attention_forward_train<float>(float*, float*, const float*, const float*, const float*, int64_t,
                                             int64_t, int64_t, int64_t, int64_t, bool);
template void attention_forward_train<double>(double*, double*, const double*, const double*, const double*,
                                              int64_t, int64_t, int64_t, int64_t, int64_t, bool);
template void attention_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                        const float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t,
                                        int64_t, bool);
template void attention_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                         const double*, const double*, const double*, int64_t, int64_t, int64_t,
                                         int64_t, int64_t, bool);

}  // namespace omni
