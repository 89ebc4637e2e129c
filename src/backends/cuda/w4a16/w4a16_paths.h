// Internal to the W4A16 module (the GEMM, its test and its bench): the two ways a call can be computed, so that
// the test checks both on every case and the bench times both at every M (the crossover that w4a16_gemm's
// dispatch uses is read off that table). The backend calls only w4a16_gemm.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backends/cuda/w4a16/w4a16_gemm.h"

namespace omni::cuda {

enum class W4A16Path {
  Auto,         // what w4a16_gemm does: DequantBlas where w4a16_auto_uses_dequant says so, else Mma
  Mma,          // the fused kernel (mma.sync, split-K), w4a16_gemm.cu
  DequantBlas,  // dequantise column chunks of W into BF16/F16 scratch, cublasGemmEx per chunk, w4a16_dequant.cu
};

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
