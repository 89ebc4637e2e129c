// Helpers shared by the CPU kernel tests: seeded random data, relative error, and a loop over every SIMD path
// compiled into the binary.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "backends/cpu/cpu_isa.h"

namespace omni::test {

// Uniform in [-scale, scale] with |v| >= scale/64, so no input is zero.
inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mag(scale / 64.0f, scale);
  std::bernoulli_distribution neg(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = neg(rng) ? -mag(rng) : mag(rng);
  return v;
}

// ‖out − ref‖ / ‖ref‖ (ref computed in double).
inline double relative_error(const float* out, const std::vector<double>& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(out[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

inline bool all_finite(const float* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

// Runs body once per compiled SIMD path, then restores the default (fastest) one.
inline void for_each_cpu_isa(const std::function<void()>& body) {
  const CpuIsa saved = active_cpu_isa();
  for (CpuIsa isa : compiled_cpu_isas()) {
    SCOPED_TRACE(std::string("cpu path ") + std::string(cpu_isa_name(isa)));
    set_active_cpu_isa(isa);
    body();
  }
  set_active_cpu_isa(saved);
}

}  // namespace omni::test
