// Tests that run the omniround binary must not mistake a sanitizer abort for the error exit they expect: under
// ASan/UBSan (scripts/sanitize_tests.sh) a finding in the child prints a report and aborts, and a test that only
// checks "exit status != 0" would pass. Every child's output goes through this check, in every build (in a build
// without sanitizers no report can appear, so it costs nothing there).
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace omni::testing_support {

// The headers ASan, LeakSanitizer and UBSan put on a report ("==PID==ERROR: AddressSanitizer: ...",
// "file:line:col: runtime error: ...").
inline bool has_sanitizer_report(const std::string& output) {
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: ",
                             "SUMMARY: UndefinedBehaviorSanitizer"})
    if (output.find(marker) != std::string::npos) return true;
  return false;
}

// A failure of the calling test when the child's output holds a sanitizer report.
inline void expect_no_sanitizer_report(const std::string& command, const std::string& output) {
  EXPECT_FALSE(has_sanitizer_report(output)) << "sanitizer report from: " << command << "\n" << output;
}

}  // namespace omni::testing_support
