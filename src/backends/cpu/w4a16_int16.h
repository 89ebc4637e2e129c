// The integer small-batch W4A16 kernels (W4A16Activations::Int16): each row of x is rounded per segment to
// 16-bit integers q with one scale s_x, the kernels sum u·q exactly in i32, and apply the scales once per
// segment: y[n] += s_w[seg, n] · s_x[seg] · (Σ_{k∈seg} u[k, n]·q[k] − z[seg, n]·Σ_{k∈seg} q[k]).
#pragma once

#include <cstdint>
#include <vector>

#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/w4a16_matmul.h"

namespace omni {

// x rounded, in the order the kernels read it.
struct W4Int16Rows {
  // [M, rows, 4]: for word row r, entry j holds q[8r + j] in its low 16 bits and q[8r + 4 + j] in its high 16
  // bits: the two inputs that the two 16-bit halves of a GPTQ word hold at nibble position j.
  std::vector<uint32_t> pairs;
  std::vector<float> scale;   // [M, S]: s_x = max|x| / 32767 over the segment (NaN when x is not finite)
  std::vector<int32_t> qsum;  // [M, S]: Σ q over the segment
};

// x: [M, padded_inputs] in packed input order.
void quantize_w4_rows(W4Int16Rows& out, const float* x, const W4A16CpuWeights& w, int64_t M);

// y[M, N] for the outputs of tile t (rows of y have stride N = w.out_features).
void w4a16_tile_int16(const W4Int16Rows& a, const W4A16CpuWeights& w, float* y, int64_t M, int64_t t, CpuIsa isa);

}  // namespace omni
