// The packing order of the GPTQ-v1 layout used by `auto_round:auto_gptq` and `auto_gptq` checkpoints
// (AUTOROUND.md §5), in one place:
//   qweight I32 [K * bits / 32, N]: word [r, n] holds the codes of inputs r * (32 / bits) + j of output n,
//                                   field j (bits wide) starting at bit bits * j (j = 0 least significant);
//   qzeros  I32 [G, N * bits / 32]: word [g, c] holds the stored zero of outputs c * (32 / bits) + j.
// Supports 2, 4 and 8 bits; 3-bit uses its own 32-values-in-3-words interleave and is not supported yet.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace omni {

// Values per 32-bit word for `bits` (2 -> 16, 4 -> 8, 8 -> 4); throws for 3-bit and other widths.
int64_t gptq_values_per_word(int bits);

// codes: [N, K] row-major unsigned codes (each < 2^bits). K must be a multiple of 32 / bits.
Tensor pack_auto_gptq_qweight(const uint8_t* codes, int64_t out_features, int64_t in_features, int bits);
// Back to [N, K] codes. Checks qweight's dtype and shape.
std::vector<uint8_t> unpack_auto_gptq_qweight(const Tensor& qweight, int64_t out_features, int64_t in_features,
                                              int bits);

// stored: [G, N] values as they go into the file (each < 2^bits; the caller applies the zero − 1 offset).
Tensor pack_auto_gptq_qzeros(const uint8_t* stored, int64_t groups, int64_t out_features, int bits);
std::vector<uint8_t> unpack_auto_gptq_qzeros(const Tensor& qzeros, int64_t groups, int64_t out_features, int bits);

// 4-bit conveniences with the names the format is known by.
inline Tensor pack_auto_gptq_int4(const uint8_t* codes, int64_t out_features, int64_t in_features) {
  return pack_auto_gptq_qweight(codes, out_features, in_features, 4);
}
inline std::vector<uint8_t> unpack_auto_gptq_int4(const Tensor& qweight, int64_t out_features, int64_t in_features) {
  return unpack_auto_gptq_qweight(qweight, out_features, in_features, 4);
}

}  // namespace omni
