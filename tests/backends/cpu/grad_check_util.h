// Finite-difference gradient checks for the backward kernels: every op is checked in double precision on
// small shapes through the scalar objective L = Σ R ⊙ f(inputs) with a fixed random R, whose gradient the op's
// backward gives when fed dy = R. Central differences have O(h²) error, so agreement to ~1e-7 is expected.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

namespace omni::test {

// Uniform in [lo, hi), seeded.
inline std::vector<double> random_doubles(size_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

inline double weighted_sum(const std::vector<double>& r, const double* y) {
  double s = 0.0;
  for (size_t i = 0; i < r.size(); ++i) s += r[i] * y[i];
  return s;
}

// ∂f/∂x by central differences; x is perturbed in place and restored.
inline std::vector<double> numeric_grad(std::vector<double>& x, const std::function<double()>& f, double h = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double fp = f();
    x[i] = saved - h;
    const double fm = f();
    x[i] = saved;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// ‖a − b‖ / ‖b‖.
inline double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

inline double norm(const std::vector<double>& a) {
  double s = 0.0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}

inline std::vector<float> to_float(const std::vector<double>& a) { return std::vector<float>(a.begin(), a.end()); }

inline double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  return rel_err(std::vector<double>(a.begin(), a.end()), b);
}

// The FD tolerance: central differences in double on O(1) data reach ~1e-8; 1e-6 leaves room.
inline constexpr double kFdTol = 1e-6;

}  // namespace omni::test
