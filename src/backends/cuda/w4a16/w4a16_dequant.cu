// The large-M path of the W4A16 GEMM: mma.sync reaches about 60 % of the H200's wgmma rate, so from some M on it
// is faster to dequantise W into BF16/F16 and let cuBLAS (wgmma) do the product. W is cut into column chunks that
// stay about L2-sized (the dequantised chunk is written to L2 and read back by cuBLAS from there) while still
// giving cuBLAS a wave of output tiles; per chunk: one dequantise kernel, one cublasGemmEx, on the caller's stream.
//
// cuBLAS handle: one per device, created lazily and kept for the process's life (destroying it at exit could run
// after the CUDA context is gone). A mutex serialises the set-stream / set-workspace / enqueue sequence; cuBLAS's
// workspace is carved out of the caller's workspace, so calls on different streams (different workspaces, as the
// contract requires) never share scratch.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <mutex>

#include "backends/cuda/w4a16/w4a16_paths.h"
#include "core/error.h"

namespace omni::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  OMNI_CHECK(e == cudaSuccess, "CUDA error in ", what, ": ", cudaGetErrorString(e));
}
void check_blas(cublasStatus_t s, const char* what) {
  OMNI_CHECK(s == CUBLAS_STATUS_SUCCESS, "cuBLAS error in ", what, ": status ", static_cast<int>(s));
}

constexpr size_t kBlasWorkspace = size_t{32} << 20;  // what cuBLAS recommends for Hopper
constexpr size_t kChunkTargetBytes = size_t{32} << 20;  // a dequantised chunk about the size of half the L2
constexpr int64_t kWaveTiles = 132 * 128 * 256;  // output elements of one wave of 128x256 tiles on 132 SMs

// Columns per chunk: L2-sized, but at least one wave of output tiles for cuBLAS; a multiple of 256 (of 64 at N).
int64_t chunk_columns(int64_t M, const W4A16DeviceWeights& w) {
  const int64_t N = w.out_features, K = w.in_features;
  const int64_t by_bytes = static_cast<int64_t>(kChunkTargetBytes) / (2 * K);
  const int64_t by_wave = (kWaveTiles + M - 1) / M;
  int64_t nc = std::max(by_bytes, by_wave);
  nc = std::max<int64_t>(256, (nc + 255) / 256 * 256);
  return std::min(nc, N);
}

constexpr size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// One warp per (64-column strip, pair of k16 tiles): it reads its two 512-byte fragment tiles (one 16-byte vector
// per lane and tile) and the group's 8 scales of its lane set, writes the 64 x 32 dequantised values into shared
// memory in [column][k] order and stores them as 64-byte row pieces of out[column][k] (row-major N x K, what
// cuBLAS reads as the transposed operand). Layout: w4a16_layout.h. (code - zero) * scale in F32, rounded once.
constexpr int kRowWords = 20;  // 16 words of a 32-input row + 4 of padding: the fragment writes are conflict-free
template <bool kBF16, bool kAsym>
__global__ void __launch_bounds__(256) dequant_kernel(const uint4* qweight, const uint16_t* scales,
                                                      const uint32_t* zeros, uint16_t* out, int N, int K,
                                                      int group_shift, int strip0, int strips) {
  __shared__ __align__(16) uint32_t sm[8][64 * kRowWords];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int pairs = K / 32;
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * 8 + warp;
  if (gw >= static_cast<int64_t>(strips) * pairs) return;  // warp-uniform; no block barrier below
  const int strip = strip0 + static_cast<int>(gw / pairs), pair = static_cast<int>(gw % pairs);
  const int c = lane / 4, t = lane % 4, k0 = pair * 32, g = k0 >> group_shift;
  const uint4 sv = *reinterpret_cast<const uint4*>(scales + static_cast<size_t>(g) * N + strip * 64 + c * 8);
  const uint32_t sw[4] = {sv.x, sv.y, sv.z, sv.w};
  const uint32_t zv = kAsym ? zeros[static_cast<size_t>(g) * (N / 8) + strip * 8 + c] : 0x88888888u;
  uint32_t* s = sm[warp];
#pragma unroll
  for (int dk = 0; dk < 2; ++dk) {
    const uint4 qv = qweight[(static_cast<size_t>(strip) * (K / 16) + 2 * pair + dk) * 32 + lane];
    const uint32_t q4[4] = {qv.x, qv.y, qv.z, qv.w};
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int i = 2 * j + h, col = 16 * j + 8 * h + c;
        const float scale = __half2float(__ushort_as_half(static_cast<uint16_t>(sw[i / 2] >> (16 * (i % 2)))));
        const float zero = static_cast<float>((zv >> (4 * i)) & 0xfu);
#pragma unroll
        for (int b = 0; b < 2; ++b) {
          const int p = 2 * h + b;  // nibble p: k = 2t + 8b, nibble p + 4: k + 1
          const float v0 = (static_cast<float>((q4[j] >> (4 * p)) & 0xfu) - zero) * scale;
          const float v1 = (static_cast<float>((q4[j] >> (4 * p + 16)) & 0xfu) - zero) * scale;
          uint32_t packed;
          if constexpr (kBF16) {
            const __nv_bfloat162 v = __floats2bfloat162_rn(v0, v1);
            packed = *reinterpret_cast<const uint32_t*>(&v);
          } else {
            const __half2 v = __floats2half2_rn(v0, v1);
            packed = *reinterpret_cast<const uint32_t*>(&v);
          }
          s[col * kRowWords + 8 * dk + t + 4 * b] = packed;
        }
      }
  }
  __syncwarp();
  uint16_t* dst = out + static_cast<size_t>(strip - strip0) * 64 * K + k0;
#pragma unroll
  for (int r = 0; r < 8; ++r) {
    const int idx = r * 32 + lane, row = idx / 4, piece = idx % 4;
    *reinterpret_cast<uint4*>(dst + static_cast<size_t>(row) * K + piece * 8) =
        *reinterpret_cast<const uint4*>(s + row * kRowWords + piece * 4);
  }
}

// y[m, n] = bias[n] in the activation type: cuBLAS then adds the product with beta = 1 (the bias is rounded to
// the activation type before the add; the fused path adds it in F32).
template <bool kBF16>
__global__ void bias_fill_kernel(uint16_t* y, const float* bias, int64_t M, int64_t N) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= M * N) return;
  const float v = bias[i % N];
  y[i] = kBF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
}

constexpr int kMaxDevices = 64;
struct BlasSlot {
  std::once_flag once;
  std::mutex mu;
  cublasHandle_t handle = nullptr;
};
BlasSlot& blas_slot() {
  static BlasSlot slots[kMaxDevices];
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  OMNI_CHECK(dev >= 0 && dev < kMaxDevices, "W4A16 GEMM: device index ", dev, " out of range");
  BlasSlot& s = slots[dev];
  std::call_once(s.once, [&] { check_blas(cublasCreate(&s.handle), "cublasCreate"); });
  return s;
}

struct DequantLayout {
  int64_t nc = 0;
  size_t weight = 0, blas = 0, total = 0;  // byte offsets from a 256-aligned base
};
DequantLayout dequant_layout(int64_t M, const W4A16DeviceWeights& w) {
  DequantLayout l;
  l.nc = chunk_columns(M, w);
  l.weight = 0;
  l.blas = align_up(static_cast<size_t>(l.nc) * w.in_features * 2, 256);
  l.total = l.blas + kBlasWorkspace + 256;  // + 256: the caller's workspace is only 16-byte aligned
  return l;
}

}  // namespace

size_t w4a16_dequant_blas_workspace_bytes(int64_t M, const W4A16DeviceWeights& w) {
  return dequant_layout(M, w).total;
}

void w4a16_dequant_blas_gemm(const W4A16DeviceWeights& w, int group_shift, const void* x, void* y, int64_t M,
                             ActDType act, const float* bias_or_null, void* workspace, size_t workspace_bytes,
                             cudaStream_t stream) {
  const int64_t N = w.out_features, K = w.in_features;
  const DequantLayout l = dequant_layout(M, w);
  OMNI_CHECK(workspace && workspace_bytes >= l.total, "w4a16_gemm (dequantise + cuBLAS): workspace of ",
             workspace_bytes, " bytes is too small, ", l.total, " needed");
  OMNI_CHECK(M <= 0x7fffffff && K <= 0x7fffffff && N <= 0x7fffffff, "w4a16_gemm: shape too large for cuBLAS");
  auto* base = reinterpret_cast<unsigned char*>(align_up(reinterpret_cast<uintptr_t>(workspace), 256));
  auto* wchunk = reinterpret_cast<uint16_t*>(base + l.weight);
  const bool bf16 = act == ActDType::BF16;
  const cudaDataType_t type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  if (bias_or_null) {
    const int64_t total = M * N;
    const unsigned blocks = static_cast<unsigned>((total + 255) / 256);
    if (bf16) bias_fill_kernel<true><<<blocks, 256, 0, stream>>>(static_cast<uint16_t*>(y), bias_or_null, M, N);
    else bias_fill_kernel<false><<<blocks, 256, 0, stream>>>(static_cast<uint16_t*>(y), bias_or_null, M, N);
    check(cudaGetLastError(), "bias_fill_kernel launch");
  }
  const float alpha = 1.f, beta = bias_or_null ? 1.f : 0.f;
  BlasSlot& blas = blas_slot();
  std::lock_guard<std::mutex> lock(blas.mu);
  check_blas(cublasSetStream(blas.handle, stream), "cublasSetStream");
  check_blas(cublasSetWorkspace(blas.handle, base + l.blas, kBlasWorkspace), "cublasSetWorkspace");
  for (int64_t n0 = 0; n0 < N; n0 += l.nc) {
    const int64_t nc = std::min(l.nc, N - n0);
    const int strips = static_cast<int>(nc / 64);
    const int64_t warps = static_cast<int64_t>(strips) * (K / 32);
    const auto qw = reinterpret_cast<const uint4*>(w.qweight);
    const unsigned blocks = static_cast<unsigned>((warps + 7) / 8);
    const int strip0 = static_cast<int>(n0 / 64), Ni = static_cast<int>(N), Ki = static_cast<int>(K);
    if (bf16 && w.zeros)
      dequant_kernel<true, true><<<blocks, 256, 0, stream>>>(qw, w.scales, w.zeros, wchunk, Ni, Ki, group_shift, strip0, strips);
    else if (bf16)
      dequant_kernel<true, false><<<blocks, 256, 0, stream>>>(qw, w.scales, w.zeros, wchunk, Ni, Ki, group_shift, strip0, strips);
    else if (w.zeros)
      dequant_kernel<false, true><<<blocks, 256, 0, stream>>>(qw, w.scales, w.zeros, wchunk, Ni, Ki, group_shift, strip0, strips);
    else
      dequant_kernel<false, false><<<blocks, 256, 0, stream>>>(qw, w.scales, w.zeros, wchunk, Ni, Ki, group_shift, strip0, strips);
    check(cudaGetLastError(), "dequant_kernel launch");
    // Column-major view: C (nc x M, ldc = N) = W_chunk^T-as-stored (K x nc, op T) x x' (K x M).
    check_blas(cublasGemmEx(blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(nc), static_cast<int>(M), Ki,
                            &alpha, wchunk, type, Ki, x, type, Ki, &beta, static_cast<uint16_t*>(y) + n0, type, Ni,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx (w4a16 dequantised chunk)");
  }
}

}  // namespace omni::cuda
