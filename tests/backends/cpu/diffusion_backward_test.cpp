// The diffusion transformers' backward kernels (FLUX blocks): layer_norm without affine, modulate, gated_add,
// gelu_tanh, the interleaved RoPE and attention with the full mask. Each by finite differences in double through
// L = Σ R ⊙ f(inputs) (grad_check_util.h), the f32 path against double, the training forwards against the
// inference kernels, and the backend entry points (F32 through CpuBackend, with their argument checks).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "backends/cpu/adaln_backward.h"
#include "backends/cpu/attention_backward.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/grad_check_util.h"
#include "backends/cpu/layernorm.h"
#include "backends/cpu/layernorm_backward.h"
#include "backends/cpu/rope_interleaved_backward.h"

namespace omni {
namespace {

using test::kFdTol;
using test::numeric_grad;
using test::random_doubles;
using test::rel_err;
using test::weighted_sum;

TEST(LayerNormBackward, FiniteDifferencesInDouble) {
  const int64_t rows = 5, dim = 11;
  const float eps = 1e-2f;  // large enough to matter in the derivative
  auto x = random_doubles(static_cast<size_t>(rows * dim), 61, -2.0, 3.0);
  const auto r = random_doubles(x.size(), 62);
  std::vector<double> y(x.size());
  auto loss = [&] {
    layernorm_forward_train(y.data(), x.data(), rows, dim, eps);
    return weighted_sum(r, y.data());
  };
  const auto dx0 = random_doubles(x.size(), 63);
  std::vector<double> dx = dx0;
  layernorm_backward(dx.data(), r.data(), x.data(), rows, dim, eps, /*accumulate_dx=*/true);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];
  EXPECT_LE(rel_err(dx, numeric_grad(x, loss)), kFdTol);
  // In place (dx aliasing dy), overwriting.
  std::vector<double> g = r;
  layernorm_backward(g.data(), g.data(), x.data(), rows, dim, eps, false);
  EXPECT_LE(rel_err(g, dx), 1e-13);
}

TEST(LayerNormBackward, FloatPathMatchesDoubleAndInference) {
  const int64_t rows = 37, dim = 96;
  const auto x = random_doubles(static_cast<size_t>(rows * dim), 64, -3.0, 5.0);
  const auto dy = random_doubles(x.size(), 65);
  std::vector<double> dx(x.size());
  layernorm_backward(dx.data(), dy.data(), x.data(), rows, dim, 1e-6f, false);
  const auto xf = test::to_float(x), dyf = test::to_float(dy);
  std::vector<float> dxf(x.size()), yf(x.size()), y_inf(x.size());
  layernorm_backward(dxf.data(), dyf.data(), xf.data(), rows, dim, 1e-6f, false);
  EXPECT_LE(rel_err(dxf, dx), 1e-6);
  layernorm_forward_train(yf.data(), xf.data(), rows, dim, 1e-6f);
  layernorm_forward(y_inf.data(), xf.data(), rows, dim, 1e-6f, LayerNormAffine{});
  EXPECT_EQ(yf, y_inf);  // the backward's statistics are the inference kernel's
}

TEST(ModulateBackward, FiniteDifferencesInDouble) {
  const int64_t B = 2, T = 3, D = 70;  // D past one 64-column task
  auto x = random_doubles(static_cast<size_t>(B * T * D), 66);
  auto scale = random_doubles(static_cast<size_t>(B * D), 67);
  auto shift = random_doubles(static_cast<size_t>(B * D), 68);
  const auto r = random_doubles(x.size(), 69);
  std::vector<double> y(x.size());
  auto loss = [&] {
    modulate_forward_train(y.data(), x.data(), scale.data(), shift.data(), B, T, D);
    return weighted_sum(r, y.data());
  };
  std::vector<double> dx(x.size()), dscale(scale.size(), 9.0), dshift(shift.size(), 9.0);  // overwritten
  modulate_backward(dx.data(), dscale.data(), dshift.data(), r.data(), x.data(), scale.data(), B, T, D);
  EXPECT_LE(rel_err(dx, numeric_grad(x, loss)), kFdTol);
  EXPECT_LE(rel_err(dscale, numeric_grad(scale, loss)), kFdTol);
  EXPECT_LE(rel_err(dshift, numeric_grad(shift, loss)), kFdTol);
  std::vector<double> g = r, s2(scale.size()), h2(shift.size());  // dx aliasing dy
  modulate_backward(g.data(), s2.data(), h2.data(), g.data(), x.data(), scale.data(), B, T, D);
  EXPECT_EQ(g, dx);
  EXPECT_EQ(s2, dscale);
}

TEST(GatedAddBackward, FiniteDifferencesInDouble) {
  const int64_t B = 3, T = 4, D = 65;
  auto x = random_doubles(static_cast<size_t>(B * T * D), 71);
  auto gate = random_doubles(static_cast<size_t>(B * D), 72);
  auto h = random_doubles(x.size(), 73);
  const auto r = random_doubles(x.size(), 74);
  std::vector<double> y(x.size());
  auto loss = [&] {
    gated_add_forward_train(y.data(), x.data(), gate.data(), h.data(), B, T, D);
    return weighted_sum(r, y.data());
  };
  std::vector<double> dgate(gate.size(), 9.0), dh(h.size());
  gated_add_backward(dgate.data(), dh.data(), r.data(), gate.data(), h.data(), B, T, D);
  EXPECT_LE(rel_err(dgate, numeric_grad(gate, loss)), kFdTol);
  EXPECT_LE(rel_err(dh, numeric_grad(h, loss)), kFdTol);
  EXPECT_LE(rel_err(r, numeric_grad(x, loss)), kFdTol);  // ∂L/∂x is dy itself
}

TEST(GeluTanhBackward, FiniteDifferencesInDoubleAndFloatPath) {
  const int64_t n = 200;
  auto x = random_doubles(static_cast<size_t>(n), 75, -5.0, 5.0);
  const auto r = random_doubles(x.size(), 76);
  std::vector<double> y(x.size()), dx(x.size());
  auto loss = [&] {
    gelu_tanh_forward_train(y.data(), x.data(), n);
    return weighted_sum(r, y.data());
  };
  gelu_tanh_backward(dx.data(), r.data(), x.data(), n);
  EXPECT_LE(rel_err(dx, numeric_grad(x, loss)), kFdTol);
  const auto xf = test::to_float(x), rf = test::to_float(r);
  std::vector<float> dxf(x.size()), yf(x.size()), y_inf(x.size());
  gelu_tanh_backward(dxf.data(), rf.data(), xf.data(), n);
  EXPECT_LE(rel_err(dxf, dx), 1e-6);
  gelu_tanh_forward_train(yf.data(), xf.data(), n);
  gelu_tanh_forward(y_inf.data(), xf.data(), n);
  EXPECT_LE(rel_err(yf, std::vector<double>(y_inf.begin(), y_inf.end())), 1e-7);
}

TEST(RopeInterleavedBackward, FiniteDifferencesInDouble) {
  const int64_t N = 4, H = 3, hd = 6;
  auto x = random_doubles(static_cast<size_t>(N * H * hd), 77);
  // Independent entries per lane (not FLUX's cos[2k] = cos[2k+1]), so the transpose is checked in general.
  const auto cos = random_doubles(static_cast<size_t>(N * hd), 78);
  const auto sin = random_doubles(static_cast<size_t>(N * hd), 79);
  const auto r = random_doubles(x.size(), 80);
  std::vector<double> y(x.size());
  auto loss = [&] {
    y = x;
    rope_interleaved_forward_train(y.data(), cos.data(), sin.data(), N, H, hd);
    return weighted_sum(r, y.data());
  };
  std::vector<double> dx = r;
  rope_interleaved_backward(dx.data(), cos.data(), sin.data(), N, H, hd);
  EXPECT_LE(rel_err(dx, numeric_grad(x, loss)), kFdTol);
  // The float forward is the inference kernel's.
  auto xf = test::to_float(x), xi = xf;
  const auto cf = test::to_float(cos), sf = test::to_float(sin);
  rope_interleaved_forward_train(xf.data(), cf.data(), sf.data(), N, H, hd);
  rope_interleaved_forward(xi.data(), cf.data(), sf.data(), N, H, hd);
  EXPECT_LE(rel_err(xf, std::vector<double>(xi.begin(), xi.end())), 1e-7);
}

struct FullShape {
  int64_t B, T, Hq, Hkv, hd;
};

class AttentionFullBackward : public ::testing::TestWithParam<FullShape> {};

TEST_P(AttentionFullBackward, FiniteDifferencesInDouble) {
  const auto [B, T, Hq, Hkv, hd] = GetParam();
  auto q = random_doubles(static_cast<size_t>(B * T * Hq * hd), 81, -1.5, 1.5);
  auto k = random_doubles(static_cast<size_t>(B * T * Hkv * hd), 82, -1.5, 1.5);
  auto v = random_doubles(static_cast<size_t>(B * T * Hkv * hd), 83);
  const auto r = random_doubles(q.size(), 84);
  std::vector<double> out(q.size()), lse(static_cast<size_t>(B * T * Hq));
  auto loss = [&] {
    attention_forward_train(out.data(), lse.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, hd, false);
    return weighted_sum(r, out.data());
  };
  loss();
  std::vector<double> dq(q.size(), 7.0), dk(k.size(), 7.0), dv(v.size(), 7.0);  // overwritten
  attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), out.data(), lse.data(),
                     B, T, Hq, Hkv, hd, false);
  EXPECT_LE(rel_err(dq, numeric_grad(q, loss)), kFdTol);
  EXPECT_LE(rel_err(dk, numeric_grad(k, loss)), kFdTol);
  EXPECT_LE(rel_err(dv, numeric_grad(v, loss)), kFdTol);
  // The first query sees later keys: its output differs from the causal one.
  std::vector<double> causal(q.size()), lc(lse.size());
  attention_forward_train(causal.data(), lc.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, hd, true);
  EXPECT_GT(std::abs(causal[0] - out[0]), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionFullBackward,
                         ::testing::Values(FullShape{2, 5, 2, 2, 4}, FullShape{1, 6, 4, 2, 8}));

TEST(AttentionFullBackwardF32, MatchesDoubleAcrossTiles) {
  const int64_t B = 2, T = 131, Hq = 2, Hkv = 2, hd = 16;  // two query tiles, the second partial
  const auto q = random_doubles(static_cast<size_t>(B * T * Hq * hd), 85, -1.5, 1.5);
  const auto k = random_doubles(static_cast<size_t>(B * T * Hkv * hd), 86, -1.5, 1.5);
  const auto v = random_doubles(static_cast<size_t>(B * T * Hkv * hd), 87);
  const auto dout = random_doubles(q.size(), 88);
  std::vector<double> out(q.size()), lse(static_cast<size_t>(B * T * Hq)), dq(q.size()), dk(k.size()), dv(v.size());
  attention_forward_train(out.data(), lse.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, hd, false);
  attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(),
                     lse.data(), B, T, Hq, Hkv, hd, false);
  const auto qf = test::to_float(q), kf = test::to_float(k), vf = test::to_float(v), df = test::to_float(dout);
  std::vector<float> outf(q.size()), lsef(lse.size()), dqf(q.size()), dkf(k.size()), dvf(v.size());
  attention_forward_train(outf.data(), lsef.data(), qf.data(), kf.data(), vf.data(), B, T, Hq, Hkv, hd, false);
  attention_backward(dqf.data(), dkf.data(), dvf.data(), df.data(), qf.data(), kf.data(), vf.data(), outf.data(),
                     lsef.data(), B, T, Hq, Hkv, hd, false);
  EXPECT_LE(rel_err(outf, out), 1e-6);
  EXPECT_LE(rel_err(lsef, lse), 1e-6);
  EXPECT_LE(rel_err(dqf, dq), 1e-5);
  EXPECT_LE(rel_err(dkf, dk), 1e-5);
  EXPECT_LE(rel_err(dvf, dv), 1e-5);
}

// ---- The backend entry points ----

Tensor f32(const std::vector<double>& v, const Shape& s) {
  Tensor t = Tensor::empty(s, DType::F32);
  for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = static_cast<float>(v[i]);
  return t;
}
std::vector<double> values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing \"" << needle << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(DiffusionBackwardOps, BackendMatchesKernels) {
  CpuBackend be;
  const int64_t B = 2, T = 3, D = 8;
  const Shape x3{B, T, D}, v2{B, D};
  const auto xv = random_doubles(static_cast<size_t>(B * T * D), 90), dyv = random_doubles(xv.size(), 91);
  const auto sv = random_doubles(static_cast<size_t>(B * D), 92);
  const Tensor x = f32(xv, x3), dy = f32(dyv, x3), s = f32(sv, v2);
  const auto xf = test::to_float(xv), dyf = test::to_float(dyv), sf = test::to_float(sv);

  Tensor dx = Tensor::empty(x3, DType::F32);
  be.layer_norm_backward(dx, dy, x, 1e-6f, false);
  std::vector<float> want(xf.size()), w2(sf.size()), w3(sf.size());
  layernorm_backward(want.data(), dyf.data(), xf.data(), B * T, D, 1e-6f, false);
  EXPECT_EQ(values(dx), std::vector<double>(want.begin(), want.end()));

  be.gelu_tanh_backward(dx, dy, x);
  gelu_tanh_backward(want.data(), dyf.data(), xf.data(), B * T * D);
  EXPECT_EQ(values(dx), std::vector<double>(want.begin(), want.end()));

  Tensor ds = Tensor::empty(v2, DType::F32), dsh = Tensor::empty(v2, DType::F32);
  be.modulate_backward(dx, ds, dsh, dy, x, s);
  modulate_backward(want.data(), w2.data(), w3.data(), dyf.data(), xf.data(), sf.data(), B, T, D);
  EXPECT_EQ(values(dx), std::vector<double>(want.begin(), want.end()));
  EXPECT_EQ(values(ds), std::vector<double>(w2.begin(), w2.end()));
  EXPECT_EQ(values(dsh), std::vector<double>(w3.begin(), w3.end()));

  be.gated_add_backward(ds, dx, dy, s, x);
  gated_add_backward(w2.data(), want.data(), dyf.data(), sf.data(), xf.data(), B, T, D);
  EXPECT_EQ(values(dx), std::vector<double>(want.begin(), want.end()));
  EXPECT_EQ(values(ds), std::vector<double>(w2.begin(), w2.end()));

  // RoPE on [B·T, 1, D] rows with [B·T, D] tables.
  const Tensor c = f32(random_doubles(xv.size(), 93), {B * T, D}), sn = f32(random_doubles(xv.size(), 94), {B * T, D});
  Tensor g = dy.clone().view({B * T, 1, D});
  be.rope_interleaved_backward(g, c, sn);
  std::vector<float> gw = dyf;
  rope_interleaved_backward(gw.data(), c.data<float>(), sn.data<float>(), B * T, 1, D);
  EXPECT_EQ(values(g), std::vector<double>(gw.begin(), gw.end()));
}

TEST(DiffusionBackwardOps, ArgumentErrorsNameTheOp) {
  CpuBackend be;
  Tensor x = Tensor::zeros({2, 3, 8}, DType::F32), v = Tensor::zeros({2, 8}, DType::F32);
  Tensor bad = Tensor::zeros({3, 8}, DType::F32);
  expect_error([&] { be.layer_norm_backward(x, x, x, 1e-6f, true); }, "layer_norm_backward: dx may not alias dy");
  expect_error([&] { be.gelu_tanh_backward(x, x, Tensor::zeros({2, 3, 7}, DType::F32)); },
               "gelu_tanh_backward: dy expected shape");
  expect_error([&] { be.modulate_backward(x, bad, v, x, x, v); }, "modulate_backward: dscale expected shape");
  expect_error([&] { be.modulate_backward(x, v, v, x, x, v); },
               "modulate_backward: dscale and dshift must be distinct");
  expect_error([&] { be.gated_add_backward(v, x, x, bad, x); }, "gated_add_backward: gate expected shape");
  Tensor bf = Tensor::zeros({2, 3, 8}, DType::BF16);
  expect_error([&] { be.gelu_tanh_backward(bf, bf, bf); }, "gelu_tanh_backward: dx expected dtype F32");
  Tensor r = Tensor::zeros({6, 1, 8}, DType::F32);
  const Tensor c4 = Tensor::zeros({6, 4}, DType::F32), s8 = Tensor::zeros({6, 8}, DType::F32);
  expect_error([&] { be.rope_interleaved_backward(r, c4, s8); }, "rope_interleaved_backward: cos expected shape");
}

// The full mask through the backend: attention saving lse, then attention_backward, against the kernels.
TEST(DiffusionBackwardOps, FullMaskAttentionTrainsThroughTheBackend) {
  CpuBackend be;
  const int64_t B = 2, T = 5, H = 2, hd = 8;
  const Shape s4{B, T, H, hd};
  const auto qv = random_doubles(static_cast<size_t>(B * T * H * hd), 95), kv = random_doubles(qv.size(), 96);
  const auto vv = random_doubles(qv.size(), 97), dv_ = random_doubles(qv.size(), 98);
  const Tensor q = f32(qv, {B * T, H, hd}), k = f32(kv, s4), v = f32(vv, s4), dout = f32(dv_, {B * T, H, hd});
  std::vector<int32_t> slot, pos;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      slot.push_back(static_cast<int32_t>(b));
      pos.push_back(static_cast<int32_t>(t));
    }
  AttentionRows rows{Tensor::from_i32(slot, {B * T}), Tensor::from_i32(pos, {B * T}), AttentionMask::Full, true};
  Tensor out = Tensor::empty({B * T, H, hd}, DType::F32), lse = Tensor::empty({B * T, H}, DType::F32);
  Tensor inf = Tensor::empty({B * T, H, hd}, DType::F32);
  be.attention(out, q, k, v, rows, &lse);
  be.attention(inf, q, k, v, rows);  // the inference (row) kernel, no lse
  EXPECT_LE(rel_err(values(out), values(inf)), 1e-6);
  Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = Tensor::empty(s4, DType::F32);
  Tensor dvt = Tensor::empty(s4, DType::F32);
  be.attention_backward(dq, dk, dvt, dout, q, k, v, out, lse, rows);
  const auto qf = test::to_float(qv), kf = test::to_float(kv), vf = test::to_float(vv), df = test::to_float(dv_);
  std::vector<float> o(qf.size()), l(static_cast<size_t>(B * T * H)), gq(qf.size()), gk(qf.size()), gv(qf.size());
  attention_forward_train(o.data(), l.data(), qf.data(), kf.data(), vf.data(), B, T, H, H, hd, false);
  attention_backward(gq.data(), gk.data(), gv.data(), df.data(), qf.data(), kf.data(), vf.data(), o.data(), l.data(), B,
                     T, H, H, hd, false);
  EXPECT_EQ(values(dq), std::vector<double>(gq.begin(), gq.end()));
  EXPECT_EQ(values(dk), std::vector<double>(gk.begin(), gk.end()));
  EXPECT_EQ(values(dvt), std::vector<double>(gv.begin(), gv.end()));
}

}  // namespace
}  // namespace omni
