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

// The kernels' older calling conventions, kept for the kernel tests written against them.
#include "backends/cpu/attention.h"
#include "backends/cpu/rope.h"

namespace omni::testing_support {

// B sequences of T queries at positions start..start+T−1 against a cache [B, S, Hkv, hd].
inline void attention_forward_batched(float* out, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                                      int64_t S, int64_t Hq, int64_t Hkv, int64_t hd, int64_t start) {
  std::vector<int32_t> slot, pos;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      slot.push_back(static_cast<int32_t>(b));
      pos.push_back(static_cast<int32_t>(start + t));
    }
  attention_forward_rows(out, q, k, v, B * T, Hq, Hkv, hd, B, S, slot.data(), pos.data());
}

inline void rope_forward(float* x, const int32_t* positions, int64_t T, int64_t H, int64_t hd, float theta) {
  rope_rows(x, positions, T, H, hd, theta, /*inverse=*/false);
}

}  // namespace omni::testing_support
