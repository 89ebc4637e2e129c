// The pid of a process that has exited and been reaped: what the leftovers of a killed run carry, for tests of
// the code that must tell them from the work of a live process.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

namespace omni::testing_support {

inline long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

}  // namespace omni::testing_support
