// gemm_f32 against a double reference (every transpose combination, edge tiles, several K and N blocks, every
// SIMD path), and the Linear backward: finite differences in double, and the f32 path against the double one.
#include <gtest/gtest.h>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/gemm_f32.h"
#include "backends/cpu/grad_check_util.h"
#include "backends/cpu/linear_backward.h"

namespace omni {
namespace {

struct GemmCase {
  int64_t M, N, K;
};

void check_gemm(bool ta, bool tb, const GemmCase& c, bool accumulate) {
  const auto a = test::random_floats(static_cast<size_t>(c.M * c.K), 11);
  const auto b = test::random_floats(static_cast<size_t>(c.K * c.N), 12);
  const auto c0 = test::random_floats(static_cast<size_t>(c.M * c.N), 13);
  // op(A)[i, p] and op(B)[p, j] for the stored layouts.
  auto A = [&](int64_t i, int64_t p) { return static_cast<double>(ta ? a[p * c.M + i] : a[i * c.K + p]); };
  auto B = [&](int64_t p, int64_t j) { return static_cast<double>(tb ? b[j * c.K + p] : b[p * c.N + j]); };
  std::vector<double> ref(static_cast<size_t>(c.M * c.N));
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      double s = accumulate ? c0[i * c.N + j] : 0.0;
      for (int64_t p = 0; p < c.K; ++p) s += A(i, p) * B(p, j);
      ref[i * c.N + j] = s;
    }
  std::vector<float> out = c0;
  gemm_f32(ta, tb, c.M, c.N, c.K, a.data(), ta ? c.M : c.K, b.data(), tb ? c.K : c.N, out.data(), c.N, accumulate);
  EXPECT_LE(test::relative_error(out.data(), ref), 2e-6)
      << "ta " << ta << " tb " << tb << " M " << c.M << " N " << c.N << " K " << c.K << " acc " << accumulate;
}

TEST(GemmF32, MatchesDoubleReferenceForEveryLayoutAndPath) {
  const GemmCase cases[] = {{1, 1, 1}, {5, 7, 3}, {37, 45, 300}, {150, 70, 513}, {13, 2100, 9}, {200, 33, 64}};
  test::for_each_cpu_isa([&] {
    for (const auto& c : cases)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (int acc = 0; acc < 2; ++acc) check_gemm(ta != 0, tb != 0, c, acc != 0);
  });
}

TEST(GemmF32, ZeroDepthClearsOrKeeps) {
  std::vector<float> c = {1.f, 2.f, 3.f, 4.f};
  gemm_f32(false, false, 2, 2, 0, nullptr, 0, nullptr, 2, c.data(), 2, true);
  EXPECT_EQ(c[3], 4.f);
  gemm_f32(false, false, 2, 2, 0, nullptr, 0, nullptr, 2, c.data(), 2, false);
  EXPECT_EQ(c[3], 0.f);
}

TEST(LinearBackward, FiniteDifferencesInDouble) {
  const int64_t M = 5, K = 7, N = 6;
  auto x = test::random_doubles(static_cast<size_t>(M * K), 1);
  auto w = test::random_doubles(static_cast<size_t>(N * K), 2);
  const auto r = test::random_doubles(static_cast<size_t>(M * N), 3);
  std::vector<double> y(static_cast<size_t>(M * N));
  auto loss = [&] {
    linear_forward_train(y.data(), x.data(), w.data(), M, K, N);
    return test::weighted_sum(r, y.data());
  };
  // Accumulation: start the buffers at nonzero values and subtract them afterwards.
  const auto dx0 = test::random_doubles(x.size(), 4), dw0 = test::random_doubles(w.size(), 5);
  std::vector<double> dx = dx0, dw = dw0;
  linear_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), M, K, N, true, true);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];
  for (size_t i = 0; i < dw.size(); ++i) dw[i] -= dw0[i];
  EXPECT_LE(test::rel_err(dx, test::numeric_grad(x, loss)), test::kFdTol);
  EXPECT_LE(test::rel_err(dw, test::numeric_grad(w, loss)), test::kFdTol);
}

TEST(LinearBackward, FloatPathMatchesDouble) {
  const int64_t M = 67, K = 130, N = 90;
  const auto x = test::random_doubles(static_cast<size_t>(M * K), 6), w = test::random_doubles(static_cast<size_t>(N * K), 7);
  const auto dy = test::random_doubles(static_cast<size_t>(M * N), 8);
  std::vector<double> y(static_cast<size_t>(M * N)), dx(x.size()), dw(w.size());
  linear_forward_train(y.data(), x.data(), w.data(), M, K, N);
  linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), M, K, N, false, false);
  const auto xf = test::to_float(x), wf = test::to_float(w), dyf = test::to_float(dy);
  std::vector<float> yf(y.size()), dxf(dx.size()), dwf(dw.size());
  linear_forward_train(yf.data(), xf.data(), wf.data(), M, K, N);
  linear_backward(dxf.data(), dwf.data(), dyf.data(), xf.data(), wf.data(), M, K, N, false, false);
  EXPECT_LE(test::rel_err(yf, y), 1e-6);
  EXPECT_LE(test::rel_err(dxf, dx), 1e-6);
  EXPECT_LE(test::rel_err(dwf, dw), 1e-6);
}

}  // namespace
}  // namespace omni
