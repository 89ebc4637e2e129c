// The layout the CUDA W4A16 GEMM reads, and the pure host repack into it from the GPTQ convention (raw arrays).
// C++17 and free of core/tensor.h so that .cu files (the kernel, its test) include it; w4a16_repack.h adds the
// GroupedIntWeight entry points the backend calls.
//
// Layout (N = out_features, K = in_features, G = number of groups, strip = 64 output columns):
//
// qweight: uint32 [N/64][K/16][32 lanes][4]. One (strip, k16 tile) is 512 contiguous bytes: lane L's 16-byte
//   vector holds, in word j (0..3), the codes that lane feeds to mma.sync m16n8k16 as B fragments for the two
//   n8 sub-tiles h = 0, 1 of the n16 slice j of the strip. With c = L / 4 and t = L % 4, sub-tile h is column
//   n = 64*strip + 16*j + 8*h + c and the fragment rows are k = 16*kt + {2t, 2t+1} (register b0) and
//   {2t+8, 2t+9} (register b1). Nibble p (bits 4p..4p+3) of the word holds:
//     p = 0, 4: h = 0, b0 (k = 2t, 2t+1)     p = 1, 5: h = 0, b1 (k = 2t+8, 2t+9)
//     p = 2, 6: h = 1, b0                    p = 3, 7: h = 1, b1
//   so (word >> 4s) & 0x000f000f puts the pair of register s in the low bits of both 16-bit halves, and OR-ing
//   an exponent ("magic number") turns it into two f16/bf16 values with no integer-to-float conversion.
//   Why strip-major: a thread block owns a few strips and a run of k16 tiles, so each strip's stage is one
//   contiguous run of memory (whole 128-byte lines, cp.async of 16 bytes per thread); a warp's 16-byte loads
//   of one 512-byte tile are conflict-free in shared memory.
// scales: f16 bits [G][N], the 64 columns of each strip permuted so that lane-set c (the 8 lanes with L/4 = c)
//   finds its 8 columns in one 16-byte vector: position 8*c + i of a strip holds column 16*(i/2) + 8*(i%2) + c
//   (i = 2j + h, the order in which the lane uses them). Row-major in groups so that a stage's groups are a few
//   contiguous rows.
// zeros: uint32 [G][N/8], empty when every zero point is 8 (symmetric: the kernel then uses the constant 8 and
//   reads no zeros). Word (g, 8*strip + c) holds in nibble i the zero point of the same column as scale
//   position 8*c + i.
// perm: int32 [K], empty unless the weight is act-order (g_idx not equal to k / group_size). K is then sorted
//   by group (stable), the repacked rows are k' with source input perm[k'], and the GEMM gathers
//   x'[m, k'] = x[m, perm[k']] on the device first. The kernel needs contiguous groups of exactly group_size
//   inputs after the sort (what GPTQ's desc_act produces); other g_idx are reported unsupported.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace omni::cuda {

// The shape constraints of the kernel: the packed tiles are 16 (k) x 64 (n); a warp steps through K in pairs of
// k16 tiles (32 inputs) that lie in one group, so K is a multiple of 32 and group_size a power of two >= 32 (or K).
inline constexpr int64_t kW4StripN = 64;
inline constexpr int64_t kW4TileK = 16;
inline constexpr int64_t kW4GroupQuantum = 32;

// A GroupedIntWeight's arrays, borrowed (layouts as in backends/linear_weight.h).
struct W4A16SourceView {
  int bits = 4;
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  int64_t group_size = 0;    // K for per-channel
  const uint32_t* qweight = nullptr;  // [K*bits/32, N]
  const uint16_t* scales = nullptr;   // f16 bits [G, N]
  const uint8_t* zeros = nullptr;     // [G, N]
  const int32_t* g_idx = nullptr;     // [K] or null
  int64_t num_groups() const { return group_size > 0 ? (in_features + group_size - 1) / group_size : 0; }
};

struct W4A16Repacked {
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  int64_t group_size = 0;    // inputs per group, K for per-channel
  int64_t num_groups = 0;    // G
  bool symmetric = false;    // all zero points 8: zeros is empty
  std::vector<uint32_t> qweight;  // N*K/8 words, see above
  std::vector<uint16_t> scales;   // G*N f16 bits
  std::vector<uint32_t> zeros;    // G*N/8 words, or empty
  std::vector<int32_t> perm;      // K, or empty
};

// Whether the kernel computes this weight; when not, *why (if given) says what does not fit (the backend then
// falls back to dequantised BF16 + cuBLAS). Out-of-range zero points or g_idx are reported here too.
bool w4a16_kernel_supports(const W4A16SourceView& w, std::string* why);
// Repacks a supported weight (throws omni::Error with the reason otherwise).
W4A16Repacked repack_w4a16(const W4A16SourceView& w);

}  // namespace omni::cuda
