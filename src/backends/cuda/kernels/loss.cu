// The masked MSE of the block tuner: a double-precision reduction (the loss decides the best snapshot, so it is
// summed in double as the CPU does), then the gradient with the count known.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

__global__ void masked_sq_error_kernel(double* acc, const float* y, const float* ref, const uint8_t* mask,
                                       int64_t rows, int64_t D) {
  __shared__ double partial[kThreads / 32];
  double sum = 0.0;
  int count = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * D; i += stride) {
    const int64_t r = i / D;
    if (!mask[r]) continue;
    const double e = static_cast<double>(y[i]) - static_cast<double>(ref[i]);
    sum += e * e;
    count += i % D == 0 ? 1 : 0;
  }
  for (int o = 16; o > 0; o >>= 1) {
    sum += __shfl_xor_sync(0xffffffffu, sum, o);
    count += __shfl_xor_sync(0xffffffffu, count, o);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = sum;
  if (lane == 0 && count) atomicAdd(&acc[1], static_cast<double>(count));
  __syncthreads();
  if (threadIdx.x == 0) {
    double block = 0.0;
    for (int w = 0; w < kThreads / 32; ++w) block += partial[w];
    atomicAdd(&acc[0], block);
  }
}

__global__ void masked_mse_grad_kernel(float* dy, const float* y, const float* ref, const uint8_t* mask,
                                       int64_t rows, int64_t D, float c) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * D; i += stride)
    dy[i] = mask[i / D] ? c * (y[i] - ref[i]) : 0.f;
}

}  // namespace

void launch_masked_sq_error(double* acc, const float* y, const float* ref, const uint8_t* mask, int64_t rows,
                            int64_t D, cudaStream_t s) {
  if (rows == 0) return;
  // A bounded grid: each block adds to acc once, so few atomics.
  const unsigned blocks = std::min<unsigned>(blocks_for(rows * D), 1024);
  masked_sq_error_kernel<<<blocks, kThreads, 0, s>>>(acc, y, ref, mask, rows, D);
  check_launch("masked_sq_error_kernel");
}

void launch_masked_mse_grad(float* dy, const float* y, const float* ref, const uint8_t* mask, int64_t rows,
                            int64_t D, float c, cudaStream_t s) {
  if (rows == 0) return;
  masked_mse_grad_kernel<<<blocks_for(rows * D), kThreads, 0, s>>>(dy, y, ref, mask, rows, D, c);
  check_launch("masked_mse_grad_kernel");
}

}  // namespace omni::cuda
