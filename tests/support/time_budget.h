// Wall-clock bounds in tests tell a linear algorithm from a quadratic one (seconds against minutes) and are set
// for the Release build. Under ASan + UBSan (scripts/sanitize_tests.sh) the same code runs several times slower,
// more on a loaded machine, so a bound is scaled by time_budget_scale(): the test still catches the quadratic
// case and does not fail merely for being instrumented.
#pragma once

namespace omni::testing_support {

#if defined(__SANITIZE_ADDRESS__)  // gcc
#define OMNI_TEST_SANITIZED 1
#elif defined(__has_feature)  // clang
#if __has_feature(address_sanitizer)
#define OMNI_TEST_SANITIZED 1
#endif
#endif

constexpr double time_budget_scale() {
#ifdef OMNI_TEST_SANITIZED
  return 10.0;
#else
  return 1.0;
#endif
}

}  // namespace omni::testing_support
