#include "backends/cuda/kernels/fault.h"

#include "core/error.h"

namespace omni::cuda {

std::string describe_fault(const DeviceFault& f) {
  switch (static_cast<FaultCode>(f.code)) {
    case FaultCode::None: return "no fault";
    case FaultCode::EmbeddingId:
      return str_cat("embedding: ids[", f.index, "] = ", f.value, " is outside the table's ", f.limit, " rows");
    case FaultCode::CopyRowsIndex:
      return str_cat("copy_rows: index[", f.index, "] = ", f.value, " is outside the ", f.limit, " rows of dst");
    case FaultCode::NegativePosition: return str_cat("rope: position ", f.value, " of row ", f.index, " is negative");
    case FaultCode::AttentionSlot:
      return str_cat("attention: row ", f.index, " names slot ", f.value, "; the cache has ", f.limit, " slots");
    case FaultCode::AttentionPosition:
      return str_cat("attention: row ", f.index, " is at position ", f.value, ", outside the capacity of ", f.limit);
  }
  return str_cat("unknown device fault ", f.code);
}

}  // namespace omni::cuda
