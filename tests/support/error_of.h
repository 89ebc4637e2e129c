// The message of the omni::Error that f() throws, or "<no error>": tests assert on what an error names.
#pragma once

#include <string>

#include "core/error.h"

namespace omni::testing_support {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const omni::Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace omni::testing_support
