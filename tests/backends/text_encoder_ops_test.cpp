// The backend ops added for the text encoders (quick_gelu, mul, attention_with_bias) on every CPU variant (F32,
// BF16 and F16 activations) against a double-precision reference on the same (rounded) inputs, outputs poisoned
// with NaN first so that an element the op fails to write fails the test; then the argument checks, each error
// naming the op and the argument. (Kept beside backend_ops_test rather than in it while that file is being
// reworked; its harness can take these cases as they are.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "support/error_of.h"

namespace omni {
namespace {

using testing_support::expect_error_containing;

// Relative L2 error of the op against the reference, per activation dtype: one rounding of each output for the
// 16-bit variants (2^-9 relative for BF16, 2^-12 for F16), f32 arithmetic for F32. Measured (printed): at most
// 1.3e-7 (F32), 2.0e-3 (BF16), 2.3e-4 (F16); the bounds are 3-8x those.
double bound_for(DType d) { return d == DType::F32 ? 1e-6 : d == DType::F16 ? 1e-3 : 6e-3; }

struct Input {
  Tensor dev;               // in the activation dtype
  std::vector<double> val;  // its values, exactly
};

class TextEncoderOps : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { be_ = std::make_unique<CpuBackend>(GetParam()); }
  DType adt() const { return GetParam(); }

  Input random(const Shape& shape, double lo, double hi) {
    std::uniform_real_distribution<float> u(static_cast<float>(lo), static_cast<float>(hi));
    Tensor f = Tensor::empty(shape, DType::F32);
    for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = u(rng_);
    Input in{be_->upload(f.to(adt())), {}};
    const Tensor back = in.dev.to(DType::F32);
    in.val.assign(back.data<float>(), back.data<float>() + back.numel());
    return in;
  }
  Tensor poisoned(const Shape& shape) {
    Tensor t = be_->alloc(shape, adt());
    std::memset(t.raw(), 0xFF, t.nbytes());  // NaN in every float format
    return t;
  }
  void expect_close(const char* what, const Tensor& got, const std::vector<double>& want) {
    const Tensor g = be_->download(got);
    ASSERT_EQ(g.numel(), static_cast<int64_t>(want.size()));
    double num = 0, den = 0;
    for (int64_t i = 0; i < g.numel(); ++i) {
      const double d = g.data<float>()[i] - want[static_cast<size_t>(i)];
      num += d * d;
      den += want[static_cast<size_t>(i)] * want[static_cast<size_t>(i)];
    }
    const double e = std::sqrt(num / den);
    std::cout << what << " (" << dtype_name(adt()) << "): " << e << "\n";
    EXPECT_LE(e, bound_for(adt())) << what;  // NaN fails too
  }

  std::unique_ptr<CpuBackend> be_;
  std::mt19937 rng_{1234};
};

TEST_P(TextEncoderOps, QuickGelu) {
  for (bool in_place : {false, true}) {
    Input x = random({3, 37}, -6, 6);
    std::vector<double> want(x.val.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = x.val[i] / (1 + std::exp(-1.702 * x.val[i]));
    Tensor y = in_place ? x.dev : poisoned({3, 37});
    be_->quick_gelu(y, x.dev);
    expect_close(in_place ? "quick_gelu in place" : "quick_gelu", y, want);
  }
}

TEST_P(TextEncoderOps, Mul) {
  for (int alias = 0; alias < 3; ++alias) {
    Input a = random({5, 19}, -3, 3), b = random({5, 19}, -3, 3);
    std::vector<double> want(a.val.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = a.val[i] * b.val[i];
    Tensor y = alias == 1 ? a.dev : alias == 2 ? b.dev : poisoned({5, 19});
    be_->mul(y, a.dev, b.dev);
    expect_close("mul", y, want);
  }
}

// softmax(scale · q·kᵀ + bias) · v in double, with −inf entries of the bias hiding keys (a row with all hidden
// gives zeros).
std::vector<double> attention_reference(const Input& q, const Input& k, const Input& v, const std::vector<float>& bias,
                                        int64_t B, int64_t Lq, int64_t Lk, int64_t H, int64_t hd, bool per_sample,
                                        double scale) {
  std::vector<double> out(static_cast<size_t>(B * Lq * H * hd), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t h = 0; h < H; ++h) {
        std::vector<double> s(static_cast<size_t>(Lk));
        double mx = -INFINITY;
        for (int64_t j = 0; j < Lk; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d)
            dot += q.val[static_cast<size_t>(((b * Lq + i) * H + h) * hd + d)] *
                   k.val[static_cast<size_t>(((b * Lk + j) * H + h) * hd + d)];
          const float bb = bias[static_cast<size_t>((((per_sample ? b * H : 0) + h) * Lq + i) * Lk + j)];
          s[static_cast<size_t>(j)] = scale * dot + bb;
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        if (mx == -INFINITY) continue;
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < Lk; ++j)
          for (int64_t d = 0; d < hd; ++d)
            out[static_cast<size_t>(((b * Lq + i) * H + h) * hd + d)] +=
                s[static_cast<size_t>(j)] / sum * v.val[static_cast<size_t>(((b * Lk + j) * H + h) * hd + d)];
      }
  return out;
}

TEST_P(TextEncoderOps, AttentionWithBias) {
  const int64_t B = 2, Lq = 5, Lk = 7, H = 3, hd = 8;
  for (bool per_sample : {false, true}) {
    for (float scale : {1.0f, 0.37f}) {
      Input q = random({B, Lq, H, hd}, -1.5, 1.5), k = random({B, Lk, H, hd}, -1.5, 1.5),
            v = random({B, Lk, H, hd}, -2, 2);
      const Shape bs = per_sample ? Shape{B, H, Lq, Lk} : Shape{H, Lq, Lk};
      Tensor bias = Tensor::empty(bs, DType::F32);
      std::uniform_real_distribution<float> u(-2, 2);
      for (int64_t i = 0; i < bias.numel(); ++i) bias.data<float>()[i] = u(rng_);
      bias.data<float>()[3] = bias.data<float>()[9] = -INFINITY;  // hidden keys
      for (int64_t j = 0; j < Lk; ++j) bias.data<float>()[(1 * Lq + 2) * Lk + j] = -INFINITY;  // a row sees none
      const std::vector<float> bv(bias.data<float>(), bias.data<float>() + bias.numel());
      Tensor out = poisoned({B, Lq, H, hd});
      be_->attention_with_bias(out, q.dev, k.dev, v.dev, be_->upload(bias), scale);
      expect_close(per_sample ? "attention_with_bias, per-sample bias" : "attention_with_bias, shared bias", out,
                   attention_reference(q, k, v, bv, B, Lq, Lk, H, hd, per_sample, scale));
    }
  }
}

TEST_P(TextEncoderOps, AttentionWithBiasRefusesBadArgumentsNamingThem) {
  const int64_t B = 2, L = 4, H = 2, hd = 8;
  const Input q = random({B, L, H, hd}, -1, 1), k = random({B, L, H, hd}, -1, 1), v = random({B, L, H, hd}, -1, 1);
  Tensor out = poisoned({B, L, H, hd});
  const Tensor bias = Tensor::zeros({H, L, L}, DType::F32);
  Tensor qq = q.dev;
  auto run = [&](Tensor& o, const Tensor& qt, const Tensor& kt, const Tensor& vt, const Tensor& bt, float s) {
    return [&, s] { be_->attention_with_bias(o, qt, kt, vt, bt, s); };
  };
  expect_error_containing(run(out, q.dev, k.dev, v.dev, Tensor::zeros({H, L, L + 1}, DType::F32), 1.0f),
                          {"attention_with_bias", "bias expected [2, 4, 4]", "[2, 2, 4, 4]", "[2, 4, 5]"});
  expect_error_containing(run(out, q.dev, k.dev, v.dev, Tensor::zeros({H, L, L}, DType::I32), 1.0f),
                          {"attention_with_bias", "bias expected dtype F32"});
  const Input k3 = random({B, L, H + 1, hd}, -1, 1);
  expect_error_containing(run(out, q.dev, k3.dev, k3.dev, bias, 1.0f),
                          {"attention_with_bias", "k expected [2, Lk, 2, 8]"});
  const Input v5 = random({B, L + 1, H, hd}, -1, 1);
  expect_error_containing(run(out, q.dev, k.dev, v5.dev, bias, 1.0f), {"attention_with_bias", "k and v"});
  expect_error_containing(run(out, q.dev, k.dev, v.dev, bias, NAN), {"attention_with_bias", "scale must be finite"});
  expect_error_containing(run(qq, q.dev, k.dev, v.dev, bias, 1.0f), {"attention_with_bias", "distinct"});
  const Input q3 = random({B * L, H, hd}, -1, 1);
  expect_error_containing(run(out, q3.dev, k.dev, v.dev, bias, 1.0f), {"attention_with_bias", "q expected"});
  Tensor other = Tensor::zeros({B, L, H, hd}, adt() == DType::F32 ? DType::BF16 : DType::F32);
  expect_error_containing(run(out, q.dev, other, other, bias, 1.0f), {"attention_with_bias", "same dtype"});
}

TEST_P(TextEncoderOps, ElementwiseOpsRefuseMismatchedArguments) {
  const Input a = random({4, 6}, -1, 1), b = random({4, 7}, -1, 1);
  Tensor y = poisoned({4, 6});
  expect_error_containing([&] { be_->mul(y, a.dev, b.dev); }, {"mul", "same shape"});
  Tensor y2 = poisoned({4, 7});
  expect_error_containing([&] { be_->quick_gelu(y2, a.dev); }, {"quick_gelu", "same shape"});
}

INSTANTIATE_TEST_SUITE_P(CpuActivations, TextEncoderOps, ::testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const ::testing::TestParamInfo<DType>& p) { return std::string(dtype_name(p.param)); });

}  // namespace
}  // namespace omni
