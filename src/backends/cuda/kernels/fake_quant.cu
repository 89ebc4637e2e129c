// AutoRound's fake quantization and its straight-through backward on the device: one thread per (row, group),
// computing with the very functions of backends/qdq_formula.h that the CPU runs, so Ŵ and the gradients equal
// the CPU's bit for bit (tests/backends/cuda/cuda_qdq_formula_test.cu checks the formula; the backend test the
// ops).
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

struct GroupAt {
  int64_t gi, at, n;  // group index into alpha/beta, first element, elements
};

__device__ __forceinline__ bool group_at(int64_t N, int64_t K, const QuantScheme& sc, GroupAt* g) {
  const int64_t groups = sc.num_groups_for(K), gsize = sc.group_size_for(K);
  g->gi = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g->gi >= N * groups) return false;
  const int64_t r = g->gi / groups, k0 = (g->gi % groups) * gsize;
  g->at = r * K + k0;
  g->n = gsize < K - k0 ? gsize : K - k0;
  return true;
}

__global__ void fake_quant_kernel(float* w_hat, const float* w, const float* v, const float* alpha, const float* beta,
                                  int64_t N, int64_t K, QuantScheme sc) {
  GroupAt g;
  if (!group_at(N, K, sc, &g)) return;
  float lo, hi;
  group_min_max(w + g.at, g.n, &lo, &hi);
  const GroupScale gs = compute_group_scale(lo, hi, alpha[g.gi], beta[g.gi], sc);
  for (int64_t j = 0; j < g.n; ++j) {
    bool inside = false;
    w_hat[g.at + j] = dequantize_code(qdq_code(w[g.at + j], v[g.at + j], gs, sc, &inside), gs);
  }
}

__global__ void fake_quant_backward_kernel(float* grad_v, float* grad_alpha, float* grad_beta, const float* grad_w,
                                           const float* w, const float* v, const float* alpha, const float* beta,
                                           int64_t N, int64_t K, QuantScheme sc) {
  GroupAt g;
  if (!group_at(N, K, sc, &g)) return;
  float da = 0.f, db = 0.f;
  qdq_group_backward(w + g.at, v + g.at, grad_w + g.at, g.n, alpha[g.gi], beta[g.gi], sc, grad_v + g.at, &da, &db);
  grad_alpha[g.gi] += da;
  grad_beta[g.gi] += db;
}

unsigned group_blocks(int64_t N, int64_t K, const QuantScheme& sc) { return blocks_for(N * sc.num_groups_for(K), 128); }

}  // namespace

void launch_fake_quant(float* w_hat, const float* w, const float* v, const float* alpha, const float* beta,
                       int64_t N, int64_t K, const QuantScheme& scheme, cudaStream_t s) {
  fake_quant_kernel<<<group_blocks(N, K, scheme), 128, 0, s>>>(w_hat, w, v, alpha, beta, N, K, scheme);
  check_launch("fake_quant_kernel");
}

void launch_fake_quant_backward(float* grad_v, float* grad_alpha, float* grad_beta, const float* grad_w_hat,
                                const float* w, const float* v, const float* alpha, const float* beta, int64_t N,
                                int64_t K, const QuantScheme& scheme, cudaStream_t s) {
  fake_quant_backward_kernel<<<group_blocks(N, K, scheme), 128, 0, s>>>(grad_v, grad_alpha, grad_beta, grad_w_hat, w,
                                                                        v, alpha, beta, N, K, scheme);
  check_launch("fake_quant_backward_kernel");
}

}  // namespace omni::cuda
