// Runs the built omniround binary from a test: exit status and stdout+stderr together.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "support/sanitizer_report.h"

namespace omni::testing_support {

struct CommandResult {
  int status = -1;     // exit status; -1 if the process did not exit normally
  std::string output;  // stdout and stderr together
};

inline CommandResult run_omniround(const std::string& args) {
  const std::string cmd = std::string(OMNI_BINARY_DIR) + "/omniround " + args + " 2>&1";
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  expect_no_sanitizer_report(cmd, r.output);
  // The shell reports a child killed by a signal (an abort, a crash) as 128 + the signal, and a binary that is
  // missing as 127: never an outcome a test expects, though "status != 0" would accept them.
  EXPECT_TRUE(r.status >= 0 && r.status < 126) << "omniround did not exit normally (status " << r.status
                                               << "): " << cmd << "\n" << r.output;
  return r;
}

}  // namespace omni::testing_support
