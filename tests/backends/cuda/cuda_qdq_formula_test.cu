// The QDQ formula (backends/qdq_formula.h) compiled into a CUDA kernel gives the host's Ŵ and STE gradients bit
// for bit: the header is what a CUDA fake-quant op will use, so tuning on the GPU freezes the same checkpoint.
// Where there is no GPU it reports a skip (CI compiles it, the GPU machine runs it).
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <random>
#include <vector>

#include "backends/cuda/cuda_runtime_info.h"
#include "backends/qdq_formula.h"

namespace omni {
namespace {

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call << ": " << cudaGetErrorString(cudaGetLastError())

// One thread per (row, group): Ŵ of the group and its STE gradients.
__global__ void qdq_groups(const float* w, const float* v, const float* alpha, const float* beta, const float* g,
                           int64_t rows, int64_t cols, QuantScheme scheme, float* w_hat, float* grad_v,
                           float* grad_a, float* grad_b) {
  const int64_t groups = scheme.num_groups_for(cols), gsize = scheme.group_size_for(cols);
  const int64_t gi = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (gi >= rows * groups) return;
  const int64_t r = gi / groups, k0 = (gi % groups) * gsize, at = r * cols + k0;
  const int64_t n = gsize < cols - k0 ? gsize : cols - k0;
  float lo, hi;
  group_min_max(w + at, n, &lo, &hi);
  const GroupScale gs = compute_group_scale(lo, hi, alpha[gi], beta[gi], scheme);
  for (int64_t j = 0; j < n; ++j) {
    bool inside = false;
    w_hat[at + j] = dequantize_code(qdq_code(w[at + j], v[at + j], gs, scheme, &inside), gs);
  }
  qdq_group_backward(w + at, v + at, g + at, n, alpha[gi], beta[gi], scheme, grad_v + at, grad_a + gi, grad_b + gi);
}

std::vector<float> normal(size_t n, float mean, float std, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, std);
  std::vector<float> out(n);
  for (float& x : out) x = d(rng);
  return out;
}

TEST(CudaQdqFormula, KernelEqualsHostBitForBit) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  const QuantScheme schemes[] = {{4, 128, true}, {4, 32, false}, {3, 64, true}, {2, 32, false}, {8, -1, true}};
  uint32_t seed = 11;
  for (const QuantScheme& sc : schemes) {
    const int64_t N = 96, K = 384, G = sc.num_groups_for(K), gsize = sc.group_size_for(K);
    const auto w = normal(N * K, 0.f, 0.03f, seed++), v = normal(N * K, 0.f, 0.3f, seed++);
    const auto a = normal(N * G, 0.9f, 0.2f, seed++), b = normal(N * G, 0.9f, 0.2f, seed++);
    const auto g = normal(N * K, 0.f, 1.f, seed++);
    // Host: the same header, run on the CPU.
    std::vector<float> want_w(N * K), want_v(N * K, 0.f), want_a(N * G, 0.f), want_b(N * G, 0.f);
    for (int64_t gi = 0; gi < N * G; ++gi) {
      const int64_t r = gi / G, k0 = (gi % G) * gsize, at = r * K + k0, n = std::min(gsize, K - k0);
      float lo, hi;
      group_min_max(w.data() + at, n, &lo, &hi);
      const GroupScale gs = compute_group_scale(lo, hi, a[gi], b[gi], sc);
      for (int64_t j = 0; j < n; ++j) {
        bool inside = false;
        want_w[at + j] = dequantize_code(qdq_code(w[at + j], v[at + j], gs, sc, &inside), gs);
      }
      qdq_group_backward(w.data() + at, v.data() + at, g.data() + at, n, a[gi], b[gi], sc, want_v.data() + at,
                         &want_a[gi], &want_b[gi]);
    }
    // Device.
    std::vector<const std::vector<float>*> ins = {&w, &v, &a, &b, &g};
    std::vector<float*> d_in(ins.size());
    for (size_t i = 0; i < ins.size(); ++i) {
      CUDA_OK(cudaMalloc(&d_in[i], ins[i]->size() * sizeof(float)));
      CUDA_OK(cudaMemcpy(d_in[i], ins[i]->data(), ins[i]->size() * sizeof(float), cudaMemcpyHostToDevice));
    }
    float *d_w, *d_v, *d_a, *d_b;
    CUDA_OK(cudaMalloc(&d_w, N * K * sizeof(float)));
    CUDA_OK(cudaMalloc(&d_v, N * K * sizeof(float)));
    CUDA_OK(cudaMalloc(&d_a, N * G * sizeof(float)));
    CUDA_OK(cudaMalloc(&d_b, N * G * sizeof(float)));
    CUDA_OK(cudaMemset(d_v, 0, N * K * sizeof(float)));
    const int threads = 64, blocks = static_cast<int>((N * G + threads - 1) / threads);
    qdq_groups<<<blocks, threads>>>(d_in[0], d_in[1], d_in[2], d_in[3], d_in[4], N, K, sc, d_w, d_v, d_a, d_b);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> got_w(N * K), got_v(N * K), got_a(N * G), got_b(N * G);
    CUDA_OK(cudaMemcpy(got_w.data(), d_w, got_w.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(got_v.data(), d_v, got_v.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(got_a.data(), d_a, got_a.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(got_b.data(), d_b, got_b.size() * sizeof(float), cudaMemcpyDeviceToHost));
    for (float* p : d_in) cudaFree(p);
    for (float* p : {d_w, d_v, d_a, d_b}) cudaFree(p);
    // The device does not contract a·b + c into an FMA here unless the host does: both follow the header's
    // expression order; a mismatch means the formula is not device-exact.
    EXPECT_EQ(got_w, want_w) << "w_hat, bits " << sc.bits << (sc.sym ? " sym" : " asym");
    EXPECT_EQ(got_v, want_v) << "grad_v, bits " << sc.bits;
    EXPECT_EQ(got_a, want_a) << "grad_alpha, bits " << sc.bits;
    EXPECT_EQ(got_b, want_b) << "grad_beta, bits " << sc.bits;
  }
}

}  // namespace
}  // namespace omni
