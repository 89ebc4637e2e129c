// ‖out − ref‖ / ‖ref‖ in double: the tolerance measure of every golden comparison.
#pragma once

#include <cmath>
#include <cstdint>

namespace omni::testing_support {

inline double rel_error(const float* out, const float* ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(out[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

}  // namespace omni::testing_support
