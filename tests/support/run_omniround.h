// Runs the built omniround binary from a test: exit status and stdout+stderr together.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

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
  return r;
}

}  // namespace omni::testing_support
