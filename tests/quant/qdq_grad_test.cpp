// The STE gradients of fake_quant_backward checked by finite differences. The STE gradient is the exact
// derivative of a smooth surrogate of QDQ in which every rounding residual (of W/s + V, of the zero point and
// of the f16 cast of s), every clamp decision and the sym branch choice are frozen at the evaluation point;
// the surrogate is written here independently, in double, from AUTOROUND.md §2, and differentiated numerically.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/half.h"
#include "quant/qdq.h"
#include "quant/qdq_grad.h"

namespace omni {
namespace {

struct Problem {
  int64_t rows, cols;
  QuantScheme scheme;
  std::vector<float> w, v, alpha, beta, g;
};

Problem make_problem(const QuantScheme& scheme, uint32_t seed) {
  Problem p{6, 96, scheme, {}, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nw(0.f, 0.05f);
  std::uniform_real_distribution<float> uv(-0.45f, 0.45f), ua(0.5f, 1.0f), ug(-1.f, 1.f);
  const int64_t n = p.rows * p.cols, groups = p.rows * scheme.num_groups_for(p.cols);
  for (int64_t i = 0; i < n; ++i) {
    p.w.push_back(nw(rng));
    p.v.push_back(uv(rng));
    p.g.push_back(ug(rng));
  }
  for (int64_t i = 0; i < groups; ++i) {
    p.alpha.push_back(ua(rng));
    p.beta.push_back(ua(rng));
  }
  return p;
}

// L = Σ G ⊙ Ŵ_surrogate(V, alpha, beta), frozen at the point `base` (float values as the forward saw them).
double surrogate_loss(const Problem& base, const std::vector<double>& v, const std::vector<double>& alpha,
                      const std::vector<double>& beta) {
  const QuantScheme& sc = base.scheme;
  const int64_t gsz = sc.group_size_for(base.cols), groups = sc.num_groups_for(base.cols);
  const double maxq = sc.sym ? sc.sym_zero() : sc.max_code();
  double loss = 0.0;
  std::vector<uint8_t> codes(static_cast<size_t>(gsz)), inside(static_cast<size_t>(gsz));
  for (int64_t r = 0; r < base.rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t k0 = g * gsz, gi = r * groups + g;
      const float* wg = base.w.data() + r * base.cols + k0;
      float wmin, wmax;
      group_min_max(wg, gsz, &wmin, &wmax);
      const GroupScale gs = compute_group_scale(wmin, wmax, base.alpha[gi], base.beta[gi], sc);
      quantize_group(wg, base.v.data() + r * base.cols + k0, gsz, gs, sc, codes.data(), inside.data());
      auto raw_scale = [&](double a, double b) {
        if (sc.sym) return gs.scale_from_max ? -wmax * a / maxq : -wmin * b / maxq;
        return (wmax * a - wmin * b) / maxq;
      };
      const double s0 = gs.scale;
      const double s = raw_scale(alpha[gi], beta[gi]) + (s0 - raw_scale(base.alpha[gi], base.beta[gi]));
      // Continuous zero point (asym), with its rounding residual frozen.
      const double zc = -wmin * beta[gi] / s + (gs.zero - (-wmin * static_cast<double>(base.beta[gi]) / s0));
      for (int64_t j = 0; j < gsz; ++j) {
        const size_t i = static_cast<size_t>(r * base.cols + k0 + j);
        const double q = static_cast<int>(codes[static_cast<size_t>(j)]) - gs.zero;
        double w_hat;
        if (inside[static_cast<size_t>(j)]) {
          const double resid = q - (static_cast<double>(wg[j]) / s0 + base.v[i]);
          w_hat = s * (wg[j] / s + v[i] + resid);
        } else if (sc.sym) {
          w_hat = s * q;
        } else {
          w_hat = s * (codes[static_cast<size_t>(j)] - zc);
        }
        loss += base.g[i] * w_hat;
      }
    }
  return loss;
}

std::vector<double> numeric(std::vector<double>& x, const std::function<double()>& f) {
  std::vector<double> d(x.size());
  const double h = 1e-5;  // the surrogate is affine in V and smooth in alpha/beta: truncation error stays tiny
  for (size_t i = 0; i < x.size(); ++i) {
    const double s = x[i];
    x[i] = s + h;
    const double fp = f();
    x[i] = s - h;
    const double fm = f();
    x[i] = s;
    d[i] = (fp - fm) / (2 * h);
  }
  return d;
}

double rel(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

class QdqGrad : public ::testing::TestWithParam<QuantScheme> {};

TEST_P(QdqGrad, MatchesFiniteDifferencesOfTheSteSurrogate) {
  const Problem p = make_problem(GetParam(), 7 + GetParam().bits);
  const int64_t n = p.rows * p.cols;
  std::vector<float> gv(static_cast<size_t>(n), 0.f), ga(p.alpha.size(), 0.f), gb(p.beta.size(), 0.f);
  fake_quant_backward(p.w.data(), p.rows, p.cols, p.scheme, {p.v.data(), p.alpha.data(), p.beta.data()},
                      p.g.data(), gv.data(), ga.data(), gb.data());
  // A second call adds (exactly doubling, as x + x is exact in binary floating point).
  std::vector<float> gv2 = gv, ga2 = ga, gb2 = gb;
  fake_quant_backward(p.w.data(), p.rows, p.cols, p.scheme, {p.v.data(), p.alpha.data(), p.beta.data()},
                      p.g.data(), gv2.data(), ga2.data(), gb2.data());
  for (size_t i = 0; i < gv.size(); ++i) ASSERT_EQ(gv2[i], 2 * gv[i]);
  for (size_t i = 0; i < ga.size(); ++i) ASSERT_EQ(ga2[i], 2 * ga[i]);
  for (size_t i = 0; i < gb.size(); ++i) ASSERT_EQ(gb2[i], 2 * gb[i]);

  std::vector<double> v(p.v.begin(), p.v.end()), a(p.alpha.begin(), p.alpha.end()), b(p.beta.begin(), p.beta.end());
  auto f = [&] { return surrogate_loss(p, v, a, b); };
  const auto nv = numeric(v, f), na = numeric(a, f), nb = numeric(b, f);
  EXPECT_LE(rel(gv, nv), 1e-5);
  EXPECT_LE(rel(ga, na), 1e-4);
  EXPECT_LE(rel(gb, nb), 1e-4);

  // The data exercises both sides of the clamp (and, for sym, both scale branches).
  const auto zero_v = std::count(gv.begin(), gv.end(), 0.f);
  EXPECT_GT(zero_v, 0);
  EXPECT_LT(zero_v, n / 4);
  if (p.scheme.sym) {
    EXPECT_GT(std::count(ga.begin(), ga.end(), 0.f), 0);
    EXPECT_GT(std::count(gb.begin(), gb.end(), 0.f), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Schemes, QdqGrad,
                         ::testing::Values(QuantScheme{4, 32, true}, QuantScheme{4, 32, false},
                                           QuantScheme{3, 48, true}, QuantScheme{2, -1, false},
                                           QuantScheme{8, 32, false}));

TEST(QdqGrad, FlooredScaleGivesNoScaleGradient) {
  for (bool sym : {true, false}) {
    const QuantScheme scheme{4, 8, sym};
    // One all-zero group: s hits the 1e-5 floor.
    std::vector<float> w(8, 0.f), v = {0.1f, -0.2f, 0.3f, -0.4f, 0.05f, 0.15f, -0.25f, 0.35f};
    std::vector<float> alpha = {0.9f}, beta = {0.8f}, g = {1.f, -2.f, 3.f, -4.f, 5.f, -6.f, 7.f, -8.f};
    std::vector<float> gv(8, 0.f), ga(1, 0.f), gb(1, 0.f);
    fake_quant_backward(w.data(), 1, 8, scheme, {v.data(), alpha.data(), beta.data()}, g.data(), gv.data(),
                        ga.data(), gb.data());
    EXPECT_EQ(ga[0], 0.f);
    EXPECT_EQ(gb[0], 0.f);
    for (int j = 0; j < 8; ++j) EXPECT_FLOAT_EQ(gv[static_cast<size_t>(j)], g[static_cast<size_t>(j)] * round_to_f16(kScaleFloor))
        << "sym " << sym << " j " << j;
  }
}

}  // namespace
}  // namespace omni
