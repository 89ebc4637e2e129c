// Plain double-precision references for every op of backend.h, for backend_ops_test.cpp. Written from the
// contract in backend.h (and the formulas of linear_weight.h / rope.h), independently of the CPU kernels:
// naive loops, one output at a time, no tiling, no shared code with src/backends/cpu. Tensors are flat
// row-major std::vector<double>; the caller passes the exact values the backend was given (already rounded to
// the backend's dtype), so a reference result differs from a correct backend only by the backend's own
// rounding.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace omni::ref {

using Vec = std::vector<double>;

inline size_t at(int64_t i) { return static_cast<size_t>(i); }

// ---- Forward ops ----

// y[M, N] = x[M, K] · w[N, K]ᵀ + bias[N] (bias may be empty).
inline Vec linear(const Vec& x, const Vec& w, const Vec& bias, int64_t M, int64_t K, int64_t N) {
  Vec y(at(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias.empty() ? 0.0 : bias[at(n)];
      for (int64_t k = 0; k < K; ++k) s += x[at(m * K + k)] * w[at(n * K + k)];
      y[at(m * N + n)] = s;
    }
  return y;
}

// The dense W[N, K] of a 4-bit grouped weight, by the formula of linear_weight.h:
//   W[n, k] = scales[g(k), n] · (code(k, n) − zeros[g(k), n]),  g(k) = g_idx[k] or k / group,
//   code(k, n) = bits 4j..4j+3 of word qweight[k / 8, n], j = k % 8.
// scales are the f16 values read as double ([G, N]); g_idx may be null.
inline Vec dequantize_int4(const uint32_t* qweight, const Vec& scales, const uint8_t* zeros, const int32_t* g_idx,
                           int64_t K, int64_t N, int64_t group) {
  Vec w(at(N * K));
  for (int64_t k = 0; k < K; ++k) {
    const int64_t g = g_idx ? g_idx[k] : k / group;
    for (int64_t n = 0; n < N; ++n) {
      const uint32_t word = qweight[(k / 8) * N + n];
      const int code = static_cast<int>((word >> (4 * (k % 8))) & 0xFu);
      w[at(n * K + k)] = scales[at(g * N + n)] * (code - static_cast<int>(zeros[g * N + n]));
    }
  }
  return w;
}

// y[t, :] = table[ids[t], :], table [V, D].
inline Vec embedding(const Vec& table, const std::vector<int32_t>& ids, int64_t D) {
  Vec y;
  for (int32_t id : ids) y.insert(y.end(), table.begin() + id * D, table.begin() + (id + 1) * D);
  return y;
}

// y = x / sqrt(mean(x²) + eps) · w over rows of D; rstd (if given) receives 1 / sqrt(mean(x²) + eps) per row.
inline Vec rms_norm(const Vec& x, const Vec& w, int64_t rows, int64_t D, double eps, Vec* rstd = nullptr) {
  Vec y(x.size());
  if (rstd) rstd->assign(at(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int64_t i = 0; i < D; ++i) ss += x[at(r * D + i)] * x[at(r * D + i)];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
    if (rstd) (*rstd)[at(r)] = inv;
    for (int64_t i = 0; i < D; ++i) y[at(r * D + i)] = x[at(r * D + i)] * inv * w[at(i)];
  }
  return y;
}

// The rotary angle of frequency i at position pos. rope.h fixes it as HF/PyTorch computes it, in f32:
// inv_freq = 1 / theta^(2i / hd) and angle = pos · inv_freq, each rounded to f32. That rounding is part of the
// op's definition (it is what the checkpoint was trained with; at position 4000 it moves the angle by ~1e-4),
// so the reference reproduces it; everything after the angle is in double.
inline double rope_angle(int32_t pos, int64_t i, int64_t hd, float theta) {
  const float exponent = static_cast<float>(2 * i) / static_cast<float>(hd);
  const float inv_freq = 1.0f / std::pow(theta, exponent);
  return static_cast<double>(static_cast<float>(pos) * inv_freq);
}

// Rotate-half rope of x [N, H, hd] at positions [N]: (a, b) = (x[i], x[i + hd/2]) → (a·c − b·s, b·c + a·s);
// the inverse rotation (rope_backward) negates the angle.
inline Vec rope(const Vec& x, const std::vector<int32_t>& pos, int64_t N, int64_t H, int64_t hd, float theta,
                bool inverse) {
  Vec y(x.size());
  const int64_t half = hd / 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = rope_angle(pos[at(n)], i, hd, theta) * (inverse ? -1.0 : 1.0);
      const double c = std::cos(angle), s = std::sin(angle);
      for (int64_t h = 0; h < H; ++h) {
        const size_t base = at((n * H + h) * hd);
        const double a = x[base + at(i)], b = x[base + at(i + half)];
        y[base + at(i)] = a * c - b * s;
        y[base + at(i + half)] = b * c + a * s;
      }
    }
  return y;
}

// Attention geometry: q, out [N, Hq, hd]; k, v [S, C, Hkv, hd]; row n sees keys 0..pos[n] of slot slot[n].
struct AttentionShape {
  int64_t N, Hq, Hkv, hd, S, C;
  int64_t q_index(int64_t n, int64_t h) const { return (n * Hq + h) * hd; }
  int64_t kv_index(int64_t s, int64_t j, int64_t hk) const { return ((s * C + j) * Hkv + hk) * hd; }
};

// The softmax probabilities of row n, head h over its keys 0..pos[n] (scores scaled by 1/sqrt(hd)), and their
// log-sum-exp.
inline Vec attention_probs(const Vec& q, const Vec& k, const AttentionShape& d, const std::vector<int32_t>& slot,
                           const std::vector<int32_t>& pos, int64_t n, int64_t h, double* lse, bool causal = true) {
  const int64_t hk = h / (d.Hq / d.Hkv), keys = causal ? pos[at(n)] + 1 : d.C;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.hd));
  Vec s(at(keys));
  for (int64_t j = 0; j < keys; ++j) {
    double dot = 0.0;
    for (int64_t e = 0; e < d.hd; ++e) dot += q[at(d.q_index(n, h) + e)] * k[at(d.kv_index(slot[at(n)], j, hk) + e)];
    s[at(j)] = dot * scale;
  }
  const double mx = *std::max_element(s.begin(), s.end());
  double z = 0.0;
  for (double& v : s) z += (v = std::exp(v - mx));
  for (double& v : s) v /= z;
  if (lse) *lse = mx + std::log(z);
  return s;
}

// out [N, Hq, hd]; lse (if given) [N, Hq]. Without causal, every row sees all C keys of its slot.
inline Vec attention(const Vec& q, const Vec& k, const Vec& v, const AttentionShape& d,
                     const std::vector<int32_t>& slot, const std::vector<int32_t>& pos, Vec* lse = nullptr,
                     bool causal = true) {
  Vec out(at(d.N * d.Hq * d.hd), 0.0);
  if (lse) lse->assign(at(d.N * d.Hq), 0.0);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t h = 0; h < d.Hq; ++h) {
      double l = 0.0;
      const Vec p = attention_probs(q, k, d, slot, pos, n, h, &l, causal);
      if (lse) (*lse)[at(n * d.Hq + h)] = l;
      const int64_t hk = h / (d.Hq / d.Hkv);
      for (int64_t j = 0; j < static_cast<int64_t>(p.size()); ++j)
        for (int64_t e = 0; e < d.hd; ++e)
          out[at(d.q_index(n, h) + e)] += p[at(j)] * v[at(d.kv_index(slot[at(n)], j, hk) + e)];
    }
  return out;
}

inline double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }

// torch.nn.LayerNorm over rows of D (biased variance); w and b empty for no affine.
inline Vec layer_norm(const Vec& x, const Vec& w, const Vec& b, int64_t rows, int64_t D, double eps) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < D; ++i) mean += x[at(r * D + i)];
    mean /= static_cast<double>(D);
    for (int64_t i = 0; i < D; ++i) var += (x[at(r * D + i)] - mean) * (x[at(r * D + i)] - mean);
    const double inv = 1.0 / std::sqrt(var / static_cast<double>(D) + eps);
    for (int64_t i = 0; i < D; ++i) {
      double v = (x[at(r * D + i)] - mean) * inv;
      if (!w.empty()) v = v * w[at(i)] + b[at(i)];
      y[at(r * D + i)] = v;
    }
  }
  return y;
}

inline Vec gelu_tanh(const Vec& x) {
  Vec y(x.size());
  const double c = std::sqrt(2.0 / 3.14159265358979323846);
  for (size_t i = 0; i < x.size(); ++i) y[i] = 0.5 * x[i] * (1.0 + std::tanh(c * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
  return y;
}

// x [B, T, D], scale and shift [B, D].
inline Vec modulate(const Vec& x, const Vec& scale, const Vec& shift, int64_t B, int64_t T, int64_t D) {
  Vec y(x.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d)
        y[at((b * T + t) * D + d)] = x[at((b * T + t) * D + d)] * (1.0 + scale[at(b * D + d)]) + shift[at(b * D + d)];
  return y;
}

// y = silu(gate) · up, silu(g) = g · σ(g).
inline Vec silu_mul(const Vec& gate, const Vec& up) {
  Vec y(gate.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = gate[i] * sigmoid(gate[i]) * up[i];
  return y;
}

inline Vec add(const Vec& a, const Vec& b) {
  Vec y(a.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = a[i] + b[i];
  return y;
}

// Row-wise softmax over rows of D.
inline Vec softmax(const Vec& x, int64_t D) {
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / at(D); ++r) {
    const double mx = *std::max_element(x.begin() + static_cast<std::ptrdiff_t>(r * at(D)),
                                        x.begin() + static_cast<std::ptrdiff_t>((r + 1) * at(D)));
    double z = 0.0;
    for (size_t i = 0; i < at(D); ++i) z += std::exp(x[r * at(D) + i] - mx);
    for (size_t i = 0; i < at(D); ++i) y[r * at(D) + i] = std::exp(x[r * at(D) + i] - mx) / z;
  }
  return y;
}

// dst with row index[i] replaced by src row i (rows of W).
inline Vec copy_rows(Vec dst, const Vec& src, const std::vector<int32_t>& index, int64_t W) {
  for (size_t i = 0; i < index.size(); ++i)
    for (int64_t w = 0; w < W; ++w) dst[at(index[i] * W + w)] = src[i * at(W) + at(w)];
  return dst;
}

// ---- The diffusion-transformer, text-encoder and VAE ops (forward only) ----

// y = x · σ(x).
inline Vec silu(const Vec& x) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * sigmoid(x[i]);
  return y;
}

// CLIP's quick GELU: y = x · σ(1.702 x).
inline Vec quick_gelu(const Vec& x) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * sigmoid(1.702 * x[i]);
  return y;
}

inline Vec mul(const Vec& a, const Vec& b) {
  Vec y(a.size());
  for (size_t i = 0; i < a.size(); ++i) y[i] = a[i] * b[i];
  return y;
}

// y[b, t, d] = x[b, t, d] + gate[b, d] · h[b, t, d], x and h [B, T, D], gate [B, D].
inline Vec gated_add(const Vec& x, const Vec& gate, const Vec& h, int64_t B, int64_t T, int64_t D) {
  Vec y(x.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d) {
        const size_t i = at((b * T + t) * D + d);
        y[i] = x[i] + gate[at(b * D + d)] * h[i];
      }
  return y;
}

// Pairs (2k, 2k+1) of x [N, H, hd] rotated with the tables cos, sin [N, hd]:
//   (re, im) → (re·cos[2k] − im·sin[2k], im·cos[2k+1] + re·sin[2k+1]).
inline Vec rope_interleaved(const Vec& x, const Vec& cos, const Vec& sin, int64_t N, int64_t H, int64_t hd) {
  Vec y(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t k = 0; k < hd; k += 2) {
        const size_t i = at((n * H + h) * hd + k);
        const double re = x[i], im = x[i + 1];
        y[i] = re * cos[at(n * hd + k)] - im * sin[at(n * hd + k)];
        y[i + 1] = im * cos[at(n * hd + k + 1)] + re * sin[at(n * hd + k + 1)];
      }
  return y;
}

// out [B, Lq, H, hd] = softmax(scale · q·kᵀ + bias) · v per sample and head over the Lk keys of k, v [B, Lk, H, hd];
// bias [H, Lq, Lk] (shared) or [B, H, Lq, Lk] (per_sample); −inf hides a key, a row with none visible gives zeros.
inline Vec attention_with_bias(const Vec& q, const Vec& k, const Vec& v, const Vec& bias, int64_t B, int64_t Lq,
                               int64_t Lk, int64_t H, int64_t hd, bool per_sample, double scale) {
  Vec out(at(B * Lq * H * hd), 0.0);
  Vec s(at(Lk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t h = 0; h < H; ++h) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Lk; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < hd; ++d) dot += q[at(((b * Lq + i) * H + h) * hd + d)] * k[at(((b * Lk + j) * H + h) * hd + d)];
          s[at(j)] = scale * dot + bias[at((((per_sample ? b * H : 0) + h) * Lq + i) * Lk + j)];
          mx = std::max(mx, s[at(j)]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;
        double sum = 0.0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j < Lk; ++j)
          for (int64_t d = 0; d < hd; ++d)
            out[at(((b * Lq + i) * H + h) * hd + d)] += s[at(j)] / sum * v[at(((b * Lk + j) * H + h) * hd + d)];
      }
  return out;
}

// torch.nn.Conv2d (stride 1, zero padding p, no dilation or groups): y [B, Cout, Ho, Wo] with Ho = H + 2p − kh + 1,
// Wo = W + 2p − kw + 1, y = bias[co] + Σ_{ci, i, j} w[co, ci, i, j] · x[b, ci, r + i − p, c + j − p]. bias may be empty.
inline Vec conv2d(const Vec& x, const Vec& w, const Vec& bias, int64_t B, int64_t Cin, int64_t H, int64_t W,
                  int64_t Cout, int64_t kh, int64_t kw, int64_t p) {
  const int64_t Ho = H + 2 * p - kh + 1, Wo = W + 2 * p - kw + 1;
  Vec y(at(B * Cout * Ho * Wo));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t co = 0; co < Cout; ++co)
      for (int64_t r = 0; r < Ho; ++r)
        for (int64_t c = 0; c < Wo; ++c) {
          double acc = bias.empty() ? 0.0 : bias[at(co)];
          for (int64_t ci = 0; ci < Cin; ++ci)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t xr = r + i - p, xc = c + j - p;
                if (xr < 0 || xr >= H || xc < 0 || xc >= W) continue;
                acc += w[at(((co * Cin + ci) * kh + i) * kw + j)] * x[at(((b * Cin + ci) * H + xr) * W + xc)];
              }
          y[at(((b * Cout + co) * Ho + r) * Wo + c)] = acc;
        }
  return y;
}

// torch.nn.GroupNorm over x [B, C, S] (S spatial positions): each (b, g) block of C/G channels normalised by its mean
// and biased variance, then · w[c] + bias[c] (both empty: no affine).
inline Vec group_norm(const Vec& x, const Vec& w, const Vec& bias, int64_t B, int64_t C, int64_t S, int64_t G,
                      double eps) {
  Vec y(x.size());
  const int64_t cg = C / G, n = cg * S;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      const int64_t base = (b * C + g * cg) * S;
      double mean = 0.0, var = 0.0;
      for (int64_t i = 0; i < n; ++i) mean += x[at(base + i)];
      mean /= static_cast<double>(n);
      for (int64_t i = 0; i < n; ++i) var += (x[at(base + i)] - mean) * (x[at(base + i)] - mean);
      var /= static_cast<double>(n);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t ch = g * cg + i / S;
        double v = (x[at(base + i)] - mean) / std::sqrt(var + eps);
        if (!w.empty()) v = v * w[at(ch)] + bias[at(ch)];
        y[at(base + i)] = v;
      }
    }
  return y;
}

// y [planes, 2H, 2W], y[p, i, j] = x[p, i / 2, j / 2].
inline Vec upsample_nearest2x(const Vec& x, int64_t planes, int64_t H, int64_t W) {
  Vec y(at(planes * 4 * H * W));
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < 2 * H; ++i)
      for (int64_t j = 0; j < 2 * W; ++j) y[at((p * 2 * H + i) * 2 * W + j)] = x[at((p * H + i / 2) * W + j / 2)];
  return y;
}

// y [batch, N, M] = x [batch, M, N] with the last two dims swapped.
inline Vec transpose_last2(const Vec& x, int64_t batch, int64_t M, int64_t N) {
  Vec y(x.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) y[at((b * N + n) * M + m)] = x[at((b * M + m) * N + n)];
  return y;
}

// ---- Backward ops ----

// For y = x · wᵀ: dx[M, K] = dy · w, dw[N, K] = dyᵀ · x (overwrite; callers add the old value to accumulate).
inline Vec linear_dx(const Vec& dy, const Vec& w, int64_t M, int64_t K, int64_t N) {
  Vec dx(at(M * K), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      double s = 0.0;
      for (int64_t n = 0; n < N; ++n) s += dy[at(m * N + n)] * w[at(n * K + k)];
      dx[at(m * K + k)] = s;
    }
  return dx;
}

inline Vec linear_dw(const Vec& dy, const Vec& x, int64_t M, int64_t K, int64_t N) {
  Vec dw(at(N * K), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      double s = 0.0;
      for (int64_t m = 0; m < M; ++m) s += dy[at(m * N + n)] * x[at(m * K + k)];
      dw[at(n * K + k)] = s;
    }
  return dw;
}

// y_i = x_i · r · w_i with r = (mean(x²) + eps)^(−1/2), ∂r/∂x_j = −r³ x_j / D:
//   dx_j = r · w_j · dy_j − x_j · r³ / D · Σ_i dy_i w_i x_i,   dw_i = Σ_rows dy_i · x_i · r.
// r is read from rstd (what the forward saved). dw receives the sum (the caller adds it to the old value).
inline void rms_norm_backward(Vec& dx, Vec* dw, const Vec& dy, const Vec& x, const Vec& w, const Vec& rstd,
                              int64_t rows, int64_t D) {
  dx.assign(x.size(), 0.0);
  if (dw) dw->assign(at(D), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const double rs = rstd[at(r)];
    double dot = 0.0;
    for (int64_t i = 0; i < D; ++i) dot += dy[at(r * D + i)] * w[at(i)] * x[at(r * D + i)];
    for (int64_t j = 0; j < D; ++j) {
      const size_t idx = at(r * D + j);
      dx[idx] = rs * w[at(j)] * dy[idx] - x[idx] * rs * rs * rs / static_cast<double>(D) * dot;
      if (dw) (*dw)[at(j)] += dy[idx] * x[idx] * rs;
    }
  }
}

// Gradients of out = attention(q, k, v): with P the probabilities of a row,
//   dv_j += P_j · dout,  dP_j = dout · v_j,  dS_j = P_j · (dP_j − Σ_i P_i dP_i),
//   dq = scale · Σ_j dS_j k_j,  dk_j += scale · dS_j · q.
inline void attention_backward(Vec& dq, Vec& dk, Vec& dv, const Vec& dout, const Vec& q, const Vec& k, const Vec& v,
                               const AttentionShape& d, const std::vector<int32_t>& slot,
                               const std::vector<int32_t>& pos) {
  dq.assign(q.size(), 0.0);
  dk.assign(k.size(), 0.0);
  dv.assign(v.size(), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d.hd));
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t h = 0; h < d.Hq; ++h) {
      const Vec p = attention_probs(q, k, d, slot, pos, n, h, nullptr);
      const int64_t hk = h / (d.Hq / d.Hkv), keys = static_cast<int64_t>(p.size()), s = slot[at(n)];
      const int64_t qi = d.q_index(n, h);
      Vec dp(at(keys));
      double pdp = 0.0;
      for (int64_t j = 0; j < keys; ++j) {
        double t = 0.0;
        for (int64_t e = 0; e < d.hd; ++e) t += dout[at(qi + e)] * v[at(d.kv_index(s, j, hk) + e)];
        dp[at(j)] = t;
        pdp += p[at(j)] * t;
      }
      for (int64_t j = 0; j < keys; ++j) {
        const double ds = p[at(j)] * (dp[at(j)] - pdp);
        const int64_t kj = d.kv_index(s, j, hk);
        for (int64_t e = 0; e < d.hd; ++e) {
          dv[at(kj + e)] += p[at(j)] * dout[at(qi + e)];
          dq[at(qi + e)] += scale * ds * k[at(kj + e)];
          dk[at(kj + e)] += scale * ds * q[at(qi + e)];
        }
      }
    }
}

// For y = g · σ(g) · u: dg = dy · u · σ(g) · (1 + g · (1 − σ(g))), du = dy · g · σ(g).
inline void silu_mul_backward(Vec& dg, Vec& du, const Vec& dy, const Vec& gate, const Vec& up) {
  dg.resize(gate.size());
  du.resize(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    const double sg = sigmoid(gate[i]);
    dg[i] = dy[i] * up[i] * sg * (1.0 + gate[i] * (1.0 - sg));
    du[i] = dy[i] * gate[i] * sg;
  }
}

// L = Σ_{r: mask[r]} Σ_d (y − ref)² / (count · D); dy (if given) = dloss · ∂L/∂y, 0 on masked rows.
inline double masked_mse_loss(const Vec& y, const Vec& target, const std::vector<uint8_t>& mask, int64_t D,
                              double dloss, Vec* dy) {
  int64_t count = 0;
  for (uint8_t m : mask) count += m ? 1 : 0;
  const double denom = static_cast<double>(count) * static_cast<double>(D);
  double sum = 0.0;
  if (dy) dy->assign(y.size(), 0.0);
  for (size_t r = 0; r < mask.size(); ++r) {
    if (!mask[r]) continue;
    for (int64_t d = 0; d < D; ++d) {
      const size_t i = r * at(D) + at(d);
      const double e = y[i] - target[i];
      sum += e * e;
      if (dy) (*dy)[i] = dloss * 2.0 * e / denom;
    }
  }
  return sum / denom;
}

// ---- Comparison ----

// Σ(out − ref)² / Σref²: the measure of every check (NaN when out has a NaN, e.g. an unwritten poisoned value;
// 0 for an exact match; +inf when ref is all zero and out is not).
inline double nmse(const Vec& out, const Vec& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (num == 0.0) return 0.0;
  return den > 0.0 ? num / den : std::numeric_limits<double>::infinity();
}

}  // namespace omni::ref
