// Dense weights from the GPTQ layout on the device: the correct path for quantized weights the W4A16 kernels do
// not take (other bit widths, odd shapes). One thread per output element; the codes of a column are a
// little-endian bit stream along K (backends/linear_weight.h), so a 3-bit code may straddle two words.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

template <class T>
__global__ void dequantize_gptq_kernel(T* out, const int32_t* qweight, const uint16_t* scales, const uint8_t* zeros,
                                       const int32_t* g_idx, int bits, int64_t K, int64_t N, int64_t group_size) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e >= N * K) return;
  const int64_t n = e / K, k = e % K;
  const int64_t bit = k * bits, word = bit / 32, shift = bit % 32;
  uint64_t stream = static_cast<uint32_t>(qweight[word * N + n]);
  if (shift + bits > 32) stream |= static_cast<uint64_t>(static_cast<uint32_t>(qweight[(word + 1) * N + n])) << 32;
  const int code = static_cast<int>((stream >> shift) & ((1u << bits) - 1));
  const int64_t g = g_idx ? g_idx[k] : k / group_size;
  const float scale = __half2float(__ushort_as_half(scales[g * N + n]));
  out[e] = from_f32<T>(scale * static_cast<float>(code - static_cast<int>(zeros[g * N + n])));
}

}  // namespace

void launch_dequantize_gptq(void* out, DType out_dtype, const int32_t* qweight, const uint16_t* scales_f16,
                            const uint8_t* zeros, const int32_t* g_idx, int bits, int64_t K, int64_t N,
                            int64_t group_size, cudaStream_t s) {
  dispatch_float(out_dtype, "dequantize", [&](auto tag) {
    using T = decltype(tag);
    dequantize_gptq_kernel<<<blocks_for(N * K), kThreads, 0, s>>>(static_cast<T*>(out), qweight, scales_f16, zeros,
                                                                  g_idx, bits, K, N, group_size);
  });
  check_launch("dequantize_gptq_kernel");
}

}  // namespace omni::cuda
