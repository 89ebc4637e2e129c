// The AutoRound parameter ops of CpuBackend: fake quantization and its straight-through backward with the shared
// formula (backends/qdq_formula.h, the same arithmetic quant/ freezes with), and the elementwise clamp, signed
// step and fill of the tuner. Rows run in parallel; each row's result does not depend on the split.
#include <algorithm>

#include "backends/cpu/cpu_backend.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

// Calls fn(row, group, first column, columns) for every group of a [rows, cols] weight, rows in parallel.
template <class Fn>
void for_each_group(int64_t rows, int64_t cols, const QuantScheme& scheme, Fn&& fn) {
  const int64_t gsize = scheme.group_size_for(cols), groups = scheme.num_groups_for(cols);
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / cols);
  parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t g = 0; g < groups; ++g) fn(r, r * groups + g, r * cols + g * gsize, std::min(gsize, cols - g * gsize));
  });
}

}  // namespace

void CpuBackend::fake_quant_impl(Tensor& w_hat, const Tensor& w, const Tensor& v, const Tensor& alpha,
                                 const Tensor& beta, const QuantScheme& scheme) {
  const float *wp = w.data<float>(), *vp = v.data<float>(), *ap = alpha.data<float>(), *bp = beta.data<float>();
  float* out = w_hat.data<float>();
  for_each_group(w.dim(0), w.dim(1), scheme, [&](int64_t, int64_t gi, int64_t at, int64_t n) {
    float wmin, wmax;
    group_min_max(wp + at, n, &wmin, &wmax);
    const GroupScale gs = compute_group_scale(wmin, wmax, ap[gi], bp[gi], scheme);
    for (int64_t j = 0; j < n; ++j) {
      bool inside = false;
      out[at + j] = dequantize_code(qdq_code(wp[at + j], vp[at + j], gs, scheme, &inside), gs);
    }
  });
}

void CpuBackend::fake_quant_backward_impl(Tensor& grad_v, Tensor& grad_alpha, Tensor& grad_beta,
                                          const Tensor& grad_w_hat, const Tensor& w, const Tensor& v,
                                          const Tensor& alpha, const Tensor& beta, const QuantScheme& scheme) {
  const float *wp = w.data<float>(), *vp = v.data<float>(), *ap = alpha.data<float>(), *bp = beta.data<float>();
  const float* gw = grad_w_hat.data<float>();
  float *gv = grad_v.data<float>(), *ga = grad_alpha.data<float>(), *gb = grad_beta.data<float>();
  for_each_group(w.dim(0), w.dim(1), scheme, [&](int64_t, int64_t gi, int64_t at, int64_t n) {
    float da = 0.f, db = 0.f;
    qdq_group_backward(wp + at, vp + at, gw + at, n, ap[gi], bp[gi], scheme, gv + at, &da, &db);
    ga[gi] += da;
    gb[gi] += db;
  });
}

void CpuBackend::clamp_impl(Tensor& x, float lo, float hi) {
  float* p = x.data<float>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) p[i] = qdq::clamp(p[i], lo, hi);
}

void CpuBackend::sign_step_impl(Tensor& p, const Tensor& g, float lr) {
  float* pp = p.data<float>();
  const float* gg = g.data<float>();
  const int64_t n = p.numel();
  for (int64_t i = 0; i < n; ++i) pp[i] -= lr * static_cast<float>((gg[i] > 0.f) - (gg[i] < 0.f));
}

void CpuBackend::fill_impl(Tensor& x, float value) { std::fill(x.data<float>(), x.data<float>() + x.numel(), value); }

}  // namespace omni
