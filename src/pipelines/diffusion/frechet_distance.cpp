#include "pipelines/diffusion/frechet_distance.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/error.h"

namespace omni {
namespace {

constexpr size_t kMaxDim = 4096;

// Symmetric n × n matrix `a` (row-major; destroyed) = vᵀ · diag(w) · v, by cyclic Jacobi rotations: row k of v
// (when asked for) is the eigenvector of w[k]. Each rotation zeroes a[p][q] (Numerical Recipes' choice of the
// smaller angle) and updates rows p and q, mirroring them into columns p and q (the matrix stays symmetric); sweeps
// run until the off-diagonal mass is at rounding level against the whole matrix.
void symmetric_eigen(std::vector<double>& a, size_t n, std::vector<double>& w, std::vector<double>* v) {
  if (v) {
    v->assign(n * n, 0.0);
    for (size_t i = 0; i < n; ++i) (*v)[i * n + i] = 1.0;
  }
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, diag = 0;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) (i == j ? diag : off) += a[i * n + j] * a[i * n + j];
    if (off <= 1e-28 * (diag + off)) break;
    for (size_t p = 0; p + 1 < n; ++p) {
      for (size_t q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (apq == 0.0) continue;
        const double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        double* rp = &a[p * n];
        double* rq = &a[q * n];
        const double app = rp[p] - t * apq, aqq = rq[q] + t * apq;
        for (size_t k = 0; k < n; ++k) {
          const double apk = rp[k], aqk = rq[k];
          rp[k] = c * apk - s * aqk;
          rq[k] = s * apk + c * aqk;
        }
        rp[p] = app;
        rq[q] = aqq;
        rp[q] = rq[p] = 0.0;
        for (size_t k = 0; k < n; ++k) {
          if (k == p || k == q) continue;
          a[k * n + p] = rp[k];
          a[k * n + q] = rq[k];
        }
        if (v) {
          double* vp = &(*v)[p * n];
          double* vq = &(*v)[q * n];
          for (size_t k = 0; k < n; ++k) {
            const double x = vp[k], y = vq[k];
            vp[k] = c * x - s * y;
            vq[k] = s * x + c * y;
          }
        }
      }
    }
  }
  w.resize(n);
  for (size_t i = 0; i < n; ++i) w[i] = a[i * n + i];
}

struct Gaussian {
  std::vector<double> mean, cov;  // [d], [d, d]
};

Gaussian fit(const std::vector<std::vector<float>>& x, const char* name, size_t d) {
  const size_t n = x.size();
  Gaussian g{std::vector<double>(d, 0.0), std::vector<double>(d * d, 0.0)};
  for (size_t i = 0; i < n; ++i) {
    OMNI_CHECK(x[i].size() == d, "Fréchet distance: vector ", i, " of set ", name, " has ", x[i].size(),
               " values; the first vector of set a has ", d);
    for (size_t k = 0; k < d; ++k) g.mean[k] += x[i][k];
  }
  for (double& m : g.mean) m /= static_cast<double>(n);
  std::vector<double> c(d);
  for (const std::vector<float>& row : x) {
    for (size_t k = 0; k < d; ++k) c[k] = row[k] - g.mean[k];
    for (size_t i = 0; i < d; ++i)
      for (size_t j = i; j < d; ++j) g.cov[i * d + j] += c[i] * c[j];
  }
  for (size_t i = 0; i < d; ++i)
    for (size_t j = i; j < d; ++j) g.cov[j * d + i] = g.cov[i * d + j] /= static_cast<double>(n - 1);
  return g;
}

std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, size_t d) {
  std::vector<double> c(d * d, 0.0);
  for (size_t i = 0; i < d; ++i)
    for (size_t k = 0; k < d; ++k) {
      const double aik = a[i * d + k];
      for (size_t j = 0; j < d; ++j) c[i * d + j] += aik * b[k * d + j];
    }
  return c;
}

}  // namespace

double frechet_distance(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  OMNI_CHECK(a.size() >= 2 && b.size() >= 2, "Fréchet distance: each set needs at least 2 vectors, found ", a.size(),
             " and ", b.size());
  const size_t d = a[0].size();
  OMNI_CHECK(d >= 1 && d <= kMaxDim, "Fréchet distance: vectors of 1 to ", kMaxDim, " values expected, found ", d);
  const Gaussian ga = fit(a, "a", d), gb = fit(b, "b", d);
  double result = 0;
  for (size_t k = 0; k < d; ++k) result += (ga.mean[k] - gb.mean[k]) * (ga.mean[k] - gb.mean[k]);
  for (size_t k = 0; k < d; ++k) result += ga.cov[k * d + k] + gb.cov[k * d + k];

  std::vector<double> w, v, work = ga.cov;
  symmetric_eigen(work, d, w, &v);
  std::vector<double> root(d * d, 0.0);  // Ca^½ = Σ_k √max(w_k, 0) · v_k v_kᵀ
  for (size_t k = 0; k < d; ++k) {
    const double r = std::sqrt(std::max(w[k], 0.0));
    if (r == 0.0) continue;
    const double* vk = &v[k * d];
    for (size_t i = 0; i < d; ++i) {
      const double x = r * vk[i];
      for (size_t j = 0; j < d; ++j) root[i * d + j] += x * vk[j];
    }
  }
  std::vector<double> m = matmul(matmul(root, gb.cov, d), root, d);
  for (size_t i = 0; i < d; ++i)  // symmetric up to rounding: make it exactly so for the Jacobi sweeps
    for (size_t j = i + 1; j < d; ++j) m[i * d + j] = m[j * d + i] = 0.5 * (m[i * d + j] + m[j * d + i]);
  symmetric_eigen(m, d, w, nullptr);
  double trace_root = 0;
  for (double x : w) trace_root += std::sqrt(std::max(x, 0.0));
  return result - 2.0 * trace_root;
}

}  // namespace omni
