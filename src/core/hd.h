// OMNI_HD marks small inline functions that host code and CUDA kernels share (the QDQ formula, f16/bf16
// rounding): __host__ __device__ under nvcc, nothing elsewhere.
#pragma once

#if defined(__CUDACC__)
#define OMNI_HD __host__ __device__
#else
#define OMNI_HD
#endif
