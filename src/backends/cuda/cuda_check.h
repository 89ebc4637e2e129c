// Every CUDA runtime and cuBLAS call of the backend goes through these checks, so a failure is an omni::Error that
// names the call (and the kernel, for launches) instead of a sticky error found three ops later.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace omni::cuda {

inline void check_cuda(cudaError_t e, const char* call) {
  if (e != cudaSuccess) OMNI_FAIL("CUDA error in ", call, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

inline void check_cublas(cublasStatus_t s, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS) OMNI_FAIL("cuBLAS error in ", call, ": ", cublasGetStatusString(s));
}

// After a kernel launch: a bad configuration is reported here, a fault in the kernel at the next synchronisation.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

}  // namespace omni::cuda

#define OMNI_CUDA(call) ::omni::cuda::check_cuda((call), #call)
#define OMNI_CUBLAS(call) ::omni::cuda::check_cublas((call), #call)
