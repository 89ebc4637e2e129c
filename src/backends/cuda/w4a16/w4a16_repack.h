// The repack entry points the CUDA backend calls: a GroupedIntWeight (CPU tensors) into the W4A16 kernel layout
// (described in w4a16_layout.h). Pure host code.
#pragma once

#include <string>

#include "backends/cuda/w4a16/w4a16_layout.h"
#include "backends/linear_weight.h"

namespace omni::cuda {

// False (with the reason in *why) for anything the kernel does not compute or a malformed weight (tensor dtypes,
// shapes, devices); the backend then dequantises to BF16 and uses cuBLAS.
bool w4a16_kernel_supports(const GroupedIntWeight& w, std::string* why);
// Repacks a supported weight; throws omni::Error with the reason otherwise.
W4A16Repacked repack_w4a16(const GroupedIntWeight& w);

}  // namespace omni::cuda
