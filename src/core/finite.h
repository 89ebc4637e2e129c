// Finding NaN and Inf in float tensors: weights that hold them make every later number meaningless (a NaN loss,
// "PPL nan"), so readers of model weights refuse them up front, naming the tensor.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/tensor.h"

namespace omni {

// Index of the first NaN or ±Inf element of a CPU F32/BF16/F16 tensor, or −1 (also for other dtypes, which hold
// no such values).
int64_t first_non_finite(const Tensor& t);

// Throws "<what> holds NaN or Inf (element i is nan)" when first_non_finite(t) >= 0.
void require_finite(const Tensor& t, std::string_view what);

}  // namespace omni
