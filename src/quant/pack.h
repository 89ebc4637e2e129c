// The packing order of the GPTQ-v1 layout used by `auto_round:auto_gptq` and `auto_gptq` checkpoints
// (AUTOROUND.md §5), in one place. Along the packed axis the words of one column form a little-endian bit
// stream and value i occupies bits [i·b, i·b + b):
//   qweight I32 [K * bits / 32, N]: column n packs the codes of inputs 0..K−1 of output n;
//   qzeros  I32 [G, N * bits / 32]: row g packs the stored zeros of outputs 0..N−1.
// For 2, 4 and 8 bits no value straddles a word (input 8r + j of a 4-bit word r sits at bits 4j..4j+3); for
// 3 bits, 32 values fill 3 words and values 10 and 21 of each block straddle two words (auto_gptq's 3-bit
// layout).
#pragma once

#include <cstdint>
#include <vector>

#include "backends/linear_weight.h"  // gptq_values_per_block
#include "core/tensor.h"

namespace omni {

// Words holding `values` values (values · bits / 32); throws naming `what` unless values is a multiple of the
// block.
int64_t gptq_packed_words(int64_t values, int bits, const char* what);

// codes: [N, K] row-major unsigned codes (each < 2^bits). K must be a multiple of gptq_values_per_block(bits).
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
