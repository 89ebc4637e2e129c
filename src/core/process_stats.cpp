#include "core/process_stats.h"

#include <fstream>
#include <sstream>
#include <string>

namespace omni {

uint64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream is(line.substr(6));
      uint64_t kib = 0;
      is >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

}  // namespace omni
