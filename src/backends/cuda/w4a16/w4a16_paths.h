// Internal to the W4A16 module (the GEMM, its test and its bench): the two ways a call can be computed, so that
// the test checks both on every case and the bench times both at every M (the crossover that w4a16_gemm's
// dispatch uses is read off that table). The backend calls only w4a16_gemm.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "backends/cuda/w4a16/w4a16_gemm.h"

namespace omni::cuda {

enum class W4A16Path {
  Auto,         // what w4a16_gemm does: DequantBlas where w4a16_auto_uses_dequant says so, else Mma
  Mma,          // the fused kernels: M <= kW4DecodeMaxM the decode kernel (w4a16_decode.cu), else split-K
  DequantBlas,  // dequantise column chunks of W into BF16/F16 scratch, cublasGemmEx per chunk, w4a16_dequant.cu
  MmaSplitK,    // the split-K mma.sync kernel of w4a16_gemm.cu at every M (v3; the bench compares it)
};

// The decode kernel (w4a16_decode.cu): M = 1..16, no workspace, clusters split K and reduce through distributed
// shared memory.
inline constexpr int64_t kW4DecodeMaxM = 16;
// What W4A16Path::Auto sends to it: M = 1..8. At M = 9..16 the first v4 run measured the v3 split-K kernel (or
// dequantise + cuBLAS on small weights) ahead on most layers; W4A16Path::Mma still takes the decode kernel there.
inline constexpr int64_t kW4DecodeAutoMaxM = 8;
bool w4a16_decode_supports(int64_t M, const W4A16DeviceWeights& w);
void w4a16_decode_gemm(const W4A16DeviceWeights& w, int group_shift, const void* x, void* y, int64_t M,
                       ActDType act, const float* bias_or_null, cudaStream_t stream);
// How the decode kernel cuts M rows of this weight (for the bench's notes).
std::string w4a16_decode_plan(int64_t M, const W4A16DeviceWeights& w);
// Programmatic dependent launch for the decode kernel (default on): its first weight loads overlap the previous
// kernel's tail. The bench turns it off to time the kernel alone.
void w4a16_set_pdl(bool on);
// The decode kernel's dequantisation: on, "folded": the mma takes 128 + q (1024 + q for f16) and the zero point
// times sum(x) is subtracted once per output element and group; off (the default, faster as measured): q - z per
// weight pair.
void w4a16_set_decode_fold(bool on);

// Whether w4a16_gemm computes M rows of this weight through DequantBlas (by M and the weight's size).
bool w4a16_auto_uses_dequant(int64_t M, const W4A16DeviceWeights& w);

size_t w4a16_workspace_bytes_for(int64_t M, const W4A16DeviceWeights& w, W4A16Path path);
void w4a16_gemm_path(const W4A16DeviceWeights& w, const void* x, void* y, int64_t M, ActDType act,
                     const float* bias_or_null, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                     W4A16Path path);

// The DequantBlas path (w4a16_dequant.cu). `x` is already in the weight's K order (gathered for act-order).
size_t w4a16_dequant_blas_workspace_bytes(int64_t M, const W4A16DeviceWeights& w);
void w4a16_dequant_blas_gemm(const W4A16DeviceWeights& w, int group_shift, const void* x, void* y, int64_t M,
                             ActDType act, const float* bias_or_null, void* workspace, size_t workspace_bytes,
                             cudaStream_t stream);

}  // namespace omni::cuda
