// Bad input found inside a kernel (an index outside its table): the kernel records the first one in a
// DeviceFault in device memory, and the backend turns it into an omni::Error at the next synchronisation.
#pragma once

#include <cstdint>
#include <string>

namespace omni::cuda {

enum class FaultCode : int {
  None = 0,
  EmbeddingId,        // a token id outside the table's rows
  CopyRowsIndex,      // a destination row outside dst
  NegativePosition,   // a rope position below 0
  AttentionSlot,      // a row's sequence slot outside the KV cache
  AttentionPosition,  // a row's position outside the KV cache's capacity
};

struct DeviceFault {
  int code = 0;
  int64_t index = 0;  // the row that was bad
  int64_t value = 0;  // its value
  int64_t limit = 0;  // the bound it broke
};

// "copy_rows: index[3] = 97 is outside the rows of dst" etc.
std::string describe_fault(const DeviceFault& f);

}  // namespace omni::cuda
