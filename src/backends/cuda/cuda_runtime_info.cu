#include "backends/cuda/cuda_runtime_info.h"

#include <cuda_runtime.h>

#include "core/error.h"

namespace omni::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  OMNI_CHECK(e == cudaSuccess, "CUDA error in ", what, ": ", cudaGetErrorString(e));
}

__global__ void bf16_to_f32_kernel(const uint16_t* in, float* out, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = __uint_as_float(static_cast<uint32_t>(in[i]) << 16);
}

}  // namespace

int device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaSuccess) return n;
  cudaGetLastError();  // clear the sticky error
  // No driver or no device is "no GPU here"; anything else (a broken driver, a mismatched runtime) is an error,
  // so that a broken GPU machine does not look like a machine without a GPU.
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) return 0;
  check(e, "cudaGetDeviceCount");
  return 0;
}

std::string device_name(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

void bf16_to_f32_on_device(const uint16_t* host_in, float* host_out, int64_t n) {
  if (n <= 0) return;
  uint16_t* d_in = nullptr;
  float* d_out = nullptr;
  check(cudaMalloc(&d_in, n * sizeof(uint16_t)), "cudaMalloc");
  check(cudaMalloc(&d_out, n * sizeof(float)), "cudaMalloc");
  check(cudaMemcpy(d_in, host_in, n * sizeof(uint16_t), cudaMemcpyHostToDevice), "cudaMemcpy to device");
  const int threads = 256;
  const auto blocks = static_cast<unsigned>((n + threads - 1) / threads);
  bf16_to_f32_kernel<<<blocks, threads>>>(d_in, d_out, n);
  check(cudaGetLastError(), "bf16_to_f32_kernel launch");
  check(cudaMemcpy(host_out, d_out, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
  cudaFree(d_in);
  cudaFree(d_out);
}

}  // namespace omni::cuda
