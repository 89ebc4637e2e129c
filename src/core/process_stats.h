// Facts about this process for reports: peak resident memory.
#pragma once

#include <cstdint>

namespace omni {

// Peak resident set size in bytes (VmHWM from /proc/self/status); 0 where it cannot be read.
uint64_t peak_rss_bytes();

}  // namespace omni
