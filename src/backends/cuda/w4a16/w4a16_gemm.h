// W4A16 GEMM on the GPU: y[M, N] = x[M, K] * W^T (+ bias), W the 4-bit weight repacked by repack_w4a16, x and y
// bf16 or f16, F32 accumulation, the output rounded once. Device memory is the caller's: this file sizes it,
// fills it (upload) and uses it (GEMM); it allocates nothing per call (the large-M path's cuBLAS handle is created
// once per device and takes its scratch from the workspace).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backends/cuda/w4a16/w4a16_layout.h"

namespace omni::cuda {

enum class ActDType { BF16, F16 };

// The repacked weight on the device. Pointers are borrowed; zeros is null for symmetric weights, perm null unless
// act-order.
struct W4A16DeviceWeights {
  int64_t in_features = 0;  // K
  int64_t out_features = 0; // N
  int64_t group_size = 0;
  int64_t num_groups = 0;
  const uint32_t* qweight = nullptr;
  const uint16_t* scales = nullptr;
  const uint32_t* zeros = nullptr;
  const int32_t* perm = nullptr;
};

// Bytes of each device buffer the weight needs (0 for an absent one); every buffer needs 16-byte alignment.
struct W4A16DeviceSizes {
  size_t qweight = 0, scales = 0, zeros = 0, perm = 0;
  size_t total() const { return qweight + scales + zeros + perm; }
};
W4A16DeviceSizes w4a16_device_sizes(const W4A16Repacked& w);

// Copies the repacked weight into caller-provided device buffers (cudaMemcpyAsync on `stream`; the host vectors
// must stay alive until the stream has passed the copies). Buffers whose size is 0 may be null.
W4A16DeviceWeights w4a16_upload(const W4A16Repacked& w, void* qweight, void* scales, void* zeros, void* perm,
                                cudaStream_t stream);

// Scratch bytes w4a16_gemm needs for M rows (split-K partial sums and their arrival counters, the act-order
// gathered x; on the dequantise + cuBLAS path, a dequantised column chunk of W and cuBLAS's workspace). The
// workspace needs no initialisation (w4a16_gemm zeroes the counters with a cudaMemsetAsync on `stream`) and may
// be reused for anything between calls; calls on different streams need different workspaces.
size_t w4a16_workspace_bytes(int64_t M, const W4A16DeviceWeights& w);

// y = x * W^T (+ bias). x: [M, K] row-major, 16-byte aligned; y: [M, N]; bias: f32 [N] or null. Enqueued on
// `stream`; throws omni::Error naming the failing CUDA call or the violated precondition. Small M runs the fused
// kernel; large M dequantises W chunk by chunk and calls cuBLAS through a handle the module creates once per
// device (there the bias is rounded to the activation type before cuBLAS adds it).
void w4a16_gemm(const W4A16DeviceWeights& w, const void* x, void* y, int64_t M, ActDType act,
                const float* bias_or_null, void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace omni::cuda
