// The message of the omni::Error that f() throws, or "<no error>": tests assert on what an error names.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// Fails the test unless f() throws an omni::Error whose message contains every one of `parts`.
template <class F>
void expect_error_containing(F&& f, const std::vector<std::string>& parts) {
  const std::string msg = error_of(f);
  EXPECT_NE(msg, "<no error>") << "no error thrown; expected one naming: " << parts.front();
  for (const std::string& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "\"" << part << "\" not in: " << msg;
}

}  // namespace omni::testing_support
