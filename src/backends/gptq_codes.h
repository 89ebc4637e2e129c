// Reading one code out of a GPTQ-convention qweight (backends/linear_weight.h): the codes of output n form a
// little-endian bit stream along K through the words qweight[0.., n], so at 3 bits a code may straddle two words.
// Header-only and OMNI_HD so that host code and CUDA kernels read the layout the same way.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace omni {

// Code of input k, output n; qweight is [K * bits / 32, N] words, bits one of 2, 3, 4, 8.
OMNI_HD inline uint32_t gptq_code(const uint32_t* qweight, int64_t N, int64_t k, int64_t n, int bits) {
  const int64_t bit = k * bits, word = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  uint64_t stream = qweight[word * N + n];
  if (shift + bits > 32) stream |= static_cast<uint64_t>(qweight[(word + 1) * N + n]) << 32;
  return static_cast<uint32_t>(stream >> shift) & ((1u << bits) - 1u);
}

}  // namespace omni
