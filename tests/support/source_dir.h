// The repository root the tests read fixtures from: $OMNI_SOURCE_DIR when set (a test binary built on one machine
// and run from a checkout elsewhere, as scripts/gpu_check.sh does), else the source tree it was built from.
#pragma once

#include <cstdlib>
#include <string>

namespace omni::testing_support {

inline std::string source_dir() {
  if (const char* env = std::getenv("OMNI_SOURCE_DIR"); env && *env) return env;
  return OMNI_SOURCE_DIR;
}

}  // namespace omni::testing_support
