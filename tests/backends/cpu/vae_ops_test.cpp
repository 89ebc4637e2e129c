// The VAE decoder's ops on the CPU backend (conv2d, group_norm, upsample_nearest2x, transpose) against plain
// double-precision loops written from backend.h's contract: every compiled SIMD path with F32 activations, and
// BF16 activations once; odd shapes; outputs poisoned with NaN first; and the bad arguments the contract refuses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/conv2d.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_test_util.h"
#include "core/error.h"

namespace omni {
namespace {

using Vec = std::vector<double>;
size_t at(int64_t i) { return static_cast<size_t>(i); }

Tensor make(const std::vector<float>& v, const Shape& shape) { return Tensor::from_f32(v, shape); }

Tensor poisoned(const Shape& shape, DType dt) {
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = std::numeric_limits<float>::quiet_NaN();
  return t.to(dt);
}

// The values a tensor holds, as double (after the rounding of its dtype).
Vec values(const Tensor& t) {
  const Tensor f = t.to(DType::F32);
  return Vec(f.data<float>(), f.data<float>() + f.numel());
}

Vec conv2d_ref(const Vec& x, const Vec& w, const Vec& bias, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t Cout,
               int64_t kh, int64_t kw, int64_t p) {
  const int64_t Ho = H + 2 * p - kh + 1, Wo = W + 2 * p - kw + 1;
  Vec y(at(B * Cout * Ho * Wo));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t co = 0; co < Cout; ++co)
      for (int64_t r = 0; r < Ho; ++r)
        for (int64_t c = 0; c < Wo; ++c) {
          double s = bias.empty() ? 0.0 : bias[at(co)];
          for (int64_t ci = 0; ci < Cin; ++ci)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t xr = r + i - p, xc = c + j - p;
                if (xr < 0 || xr >= H || xc < 0 || xc >= W) continue;
                s += w[at(((co * Cin + ci) * kh + i) * kw + j)] * x[at(((b * Cin + ci) * H + xr) * W + xc)];
              }
          y[at(((b * Cout + co) * Ho + r) * Wo + c)] = s;
        }
  return y;
}

Vec group_norm_ref(const Vec& x, const Vec& w, const Vec& bias, int64_t B, int64_t C, int64_t S, int64_t G,
                   double eps) {
  Vec y(x.size());
  const int64_t cg = C / G;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      double mean = 0, var = 0;
      const int64_t base = (b * C + g * cg) * S, n = cg * S;
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

double rel(const Tensor& got, const Vec& want) {
  const Tensor f = got.to(DType::F32);
  EXPECT_TRUE(test::all_finite(f.data<float>(), static_cast<size_t>(f.numel())));
  return test::relative_error(f.data<float>(), want);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct ConvCase {
  int64_t B, Cin, H, W, Cout, k, pad;
  bool bias;
};

TEST(VaeOpsTest, Conv2dMatchesReference) {
  // 3x3 "same" as the VAE uses, 1x1 shortcuts, a valid (unpadded) 3x3, a 1x1 with padding, and an image wider
  // than a GEMM tile with channel counts off every SIMD width.
  const std::vector<ConvCase> cases = {
      {2, 5, 7, 6, 9, 3, 1, true}, {1, 16, 9, 11, 3, 3, 1, true},  {2, 12, 5, 4, 7, 1, 0, true},
      {1, 6, 8, 5, 4, 3, 0, false}, {1, 3, 4, 4, 5, 1, 1, true},   {1, 24, 33, 70, 17, 3, 1, true},
  };
  double worst_f32 = 0, worst_bf16 = 0;
  for (const ConvCase& c : cases) {
    SCOPED_TRACE("B " + std::to_string(c.B) + " Cin " + std::to_string(c.Cin) + " " + std::to_string(c.H) + "x" +
                 std::to_string(c.W) + " Cout " + std::to_string(c.Cout) + " k " + std::to_string(c.k) + " pad " +
                 std::to_string(c.pad));
    const int64_t Ho = c.H + 2 * c.pad - c.k + 1, Wo = c.W + 2 * c.pad - c.k + 1;
    const Shape xs{c.B, c.Cin, c.H, c.W}, ws{c.Cout, c.Cin, c.k, c.k}, ys{c.B, c.Cout, Ho, Wo};
    const Tensor x = make(test::random_floats(at(shape_numel(xs)), 101, 2.0f), xs);
    const Tensor w = make(test::random_floats(at(shape_numel(ws)), 102, 0.5f), ws);
    const Tensor b = make(test::random_floats(at(c.Cout), 103), {c.Cout});
    const Vec ref = conv2d_ref(values(x), values(w), c.bias ? values(b) : Vec{}, c.B, c.Cin, c.H, c.W, c.Cout, c.k,
                               c.k, c.pad);
    test::for_each_cpu_isa([&] {
      CpuBackend be;
      Tensor y = poisoned(ys, DType::F32);
      be.conv2d(y, x, w, c.bias ? &b : nullptr, c.pad);
      const double e = rel(y, ref);
      worst_f32 = std::max(worst_f32, e);
      EXPECT_LT(e, 2e-6);
      // Bands of 1 and 3 output rows (a full image takes several; these small ones fit in one by default).
      for (int64_t band : {1, 3}) {
        Tensor yb = poisoned(ys, DType::F32);
        conv2d_forward(yb.data<float>(), x.data<float>(), w.data<float>(), c.bias ? b.data<float>() : nullptr, c.B,
                       c.Cin, c.H, c.W, c.Cout, c.k, c.k, c.pad, band);
        EXPECT_LT(rel(yb, ref), 2e-6) << "bands of " << band << " rows";
      }
    });
    // BF16 activations: x is rounded to BF16 first; the reference sees those values, the output one rounding.
    CpuBackend be16(DType::BF16);
    const Tensor x16 = x.to(DType::BF16);
    Tensor y16 = poisoned(ys, DType::BF16);
    be16.conv2d(y16, x16, w, c.bias ? &b : nullptr, c.pad);
    const Vec ref16 = conv2d_ref(values(x16), values(w), c.bias ? values(b) : Vec{}, c.B, c.Cin, c.H, c.W, c.Cout,
                                 c.k, c.k, c.pad);
    const double e16 = rel(y16, ref16);
    worst_bf16 = std::max(worst_bf16, e16);
    EXPECT_LT(e16, 4e-3);
  }
  std::cout << "conv2d: worst relative error " << worst_f32 << " (F32), " << worst_bf16 << " (BF16 activations)\n";
}

TEST(VaeOpsTest, GroupNormMatchesReference) {
  struct Case {
    int64_t B, C, H, W, G;
    bool affine;
  };
  for (const Case& c : std::vector<Case>{{2, 12, 5, 3, 4, true}, {1, 32, 7, 9, 32, true}, {3, 6, 1, 1, 1, true},
                                         {1, 10, 6, 4, 5, false}}) {
    SCOPED_TRACE("C " + std::to_string(c.C) + " G " + std::to_string(c.G));
    const Shape xs{c.B, c.C, c.H, c.W};
    std::vector<float> xv = test::random_floats(at(shape_numel(xs)), 111, 3.0f);
    for (float& v : xv) v += 5.0f;  // a large mean: the variance must not come from E[x²] − E[x]²
    const Tensor x = make(xv, xs);
    const Tensor w = make(test::random_floats(at(c.C), 112), {c.C}), b = make(test::random_floats(at(c.C), 113), {c.C});
    const Vec ref = group_norm_ref(values(x), c.affine ? values(w) : Vec{}, c.affine ? values(b) : Vec{}, c.B, c.C,
                                   c.H * c.W, c.G, 1e-6);
    CpuBackend be;
    Tensor y = poisoned(xs, DType::F32);
    be.group_norm(y, x, c.G, 1e-6f, c.affine ? &w : nullptr, c.affine ? &b : nullptr);
    const double e = rel(y, ref);
    std::cout << "group_norm C " << c.C << " G " << c.G << ": " << e;
    EXPECT_LT(e, 1e-6);
    Tensor inplace = x.clone();  // y may alias x
    be.group_norm(inplace, inplace, c.G, 1e-6f, c.affine ? &w : nullptr, c.affine ? &b : nullptr);
    EXPECT_LT(rel(inplace, ref), 1e-6);

    CpuBackend be16(DType::BF16);
    const Tensor x16 = x.to(DType::BF16);
    Tensor y16 = poisoned(xs, DType::BF16);
    be16.group_norm(y16, x16, c.G, 1e-6f, c.affine ? &w : nullptr, c.affine ? &b : nullptr);
    const Vec ref16 = group_norm_ref(values(x16), c.affine ? values(w) : Vec{}, c.affine ? values(b) : Vec{}, c.B,
                                     c.C, c.H * c.W, c.G, 1e-6);
    const double e16 = rel(y16, ref16);
    std::cout << " (F32), " << e16 << " (BF16 activations)\n";
    EXPECT_LT(e16, 4e-3);
  }
}

TEST(VaeOpsTest, UpsampleAndTransposeCopyExactly) {
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    CpuBackend be(dt);
    const Shape xs{2, 3, 5, 7};
    const Tensor x = make(test::random_floats(at(shape_numel(xs)), 121), xs).to(dt);
    const Vec xv = values(x);
    Tensor up = poisoned({2, 3, 10, 14}, dt);
    be.upsample_nearest2x(up, x);
    const Vec uv = values(up);
    for (int64_t p = 0; p < 6; ++p)
      for (int64_t i = 0; i < 10; ++i)
        for (int64_t j = 0; j < 14; ++j)
          ASSERT_EQ(uv[at((p * 10 + i) * 14 + j)], xv[at((p * 5 + i / 2) * 7 + j / 2)]) << p << " " << i << " " << j;

    // [B, C, HW] -> [B, HW, C] with sizes across the 32-element tiles.
    const int64_t B = 2, M = 37, N = 70;
    const Tensor t = make(test::random_floats(at(B * M * N), 122), {B, M, N}).to(dt);
    const Vec tv = values(t);
    Tensor tt = poisoned({B, N, M}, dt);
    be.transpose(tt, t);
    const Vec ttv = values(tt);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) ASSERT_EQ(ttv[at((b * N + j) * M + i)], tv[at((b * M + i) * N + j)]);
  }
}

TEST(VaeOpsTest, BadArgumentsAreNamed) {
  CpuBackend be;
  const Tensor x = make(test::random_floats(2 * 12 * 4 * 4, 131), {2, 12, 4, 4});
  const Tensor w = make(test::random_floats(5 * 12 * 9, 132), {5, 12, 3, 3});
  const Tensor b = make(test::random_floats(5, 133), {5});
  Tensor y = Tensor::empty({2, 5, 4, 4}, DType::F32);
  const Tensor w_wrong_cin = make(test::random_floats(5 * 11 * 9, 134), {5, 11, 3, 3});
  EXPECT_NE(error_of([&] { be.conv2d(y, x, w_wrong_cin, &b, 1); }).find("takes 11 input channels"), std::string::npos);
  Tensor y_wrong = Tensor::empty({2, 5, 2, 2}, DType::F32);
  EXPECT_NE(error_of([&] { be.conv2d(y_wrong, x, w, &b, 1); }).find("conv2d: y expected shape [2, 5, 4, 4]"),
            std::string::npos)
      << error_of([&] { be.conv2d(y_wrong, x, w, &b, 1); });
  const Tensor b_wrong = make(test::random_floats(4, 135), {4});
  EXPECT_NE(error_of([&] { be.conv2d(y, x, w, &b_wrong, 1); }).find("conv2d: bias expected shape [5]"),
            std::string::npos);
  const Tensor w16 = w.to(DType::BF16);
  EXPECT_NE(error_of([&] { be.conv2d(y, x, w16, &b, 1); }).find("conv2d: w expected dtype F32"), std::string::npos);
  Tensor small = Tensor::empty({1, 12, 1, 1}, DType::F32);
  Tensor ys = Tensor::empty({1, 5, 1, 1}, DType::F32);
  EXPECT_NE(error_of([&] { be.conv2d(ys, small, w, &b, 0); }).find("does not fit"), std::string::npos);

  Tensor g = Tensor::empty(x.shape(), DType::F32);
  const Tensor gw = make(test::random_floats(12, 136), {12});
  EXPECT_NE(error_of([&] { be.group_norm(g, x, 5, 1e-6f, &gw, &gw); }).find("5 groups do not divide the 12 channels"),
            std::string::npos);
  EXPECT_NE(error_of([&] { be.group_norm(g, x, 4, 1e-6f, &gw, nullptr); }).find("both or neither"), std::string::npos);
  const Tensor gw_wrong = make(test::random_floats(6, 137), {6});
  EXPECT_NE(error_of([&] { be.group_norm(g, x, 4, 1e-6f, &gw_wrong, &gw_wrong); }).find("weight expected shape [12]"),
            std::string::npos);

  Tensor up_wrong = Tensor::empty({2, 12, 8, 7}, DType::F32);
  EXPECT_NE(error_of([&] { be.upsample_nearest2x(up_wrong, x); }).find("y expected shape [2, 12, 8, 8]"),
            std::string::npos);
  Tensor tr_wrong = Tensor::empty({2, 12, 4, 4}, DType::BF16);
  EXPECT_NE(error_of([&] { be.transpose(tr_wrong, x); }).find("same dtype"), std::string::npos);
  Tensor same = x.clone();
  EXPECT_NE(error_of([&] { be.transpose(same, same); }).find("distinct"), std::string::npos);
}

}  // namespace
}  // namespace omni
