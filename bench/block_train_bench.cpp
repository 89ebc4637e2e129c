// One Qwen3 block forward + backward for AutoRound tuning (Qwen3BlockTrainer, fake-quant W4 g128 sym), against
// the f32 GEMM it is built on, measured in the same run so that the ratio block rate / GEMM rate is meaningful.
//
// FLOP count (what the code does, multiply-add = 2):
//   Linears: forward 2·n·K·N, backward dX 2·n·K·N and dW 2·n·K·N, so 6·n·Σ(K·N) over the 7 Linears (n = B·T).
//   Attention: P = B·Hq·T(T+1)/2 causal (query, key) pairs; forward q·k and p·v (4·hd per pair); backward
//   recomputes q·k, then dout·v, dq, dk, dv (10·hd per pair): 14·hd·P.
//   Norms, RoPE, SiLU, softmax exponentials, the loss and the QDQ backward are not counted (they are O(n·D) or
//   O(N·K) and cost time, so they lower the reported rate). Neither is the masked upper half of each diagonal
//   96-query tile that the f32 attention computes and discards (at T = 256 about a quarter more attention work).
// Run: build-*/block_train_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "backends/cpu/gemm_f32.h"
#include "backends/cpu/masked_mse_loss_backward.h"
#include "core/thread_pool.h"
#include "models/qwen3/qwen3_block_trainer.h"

namespace omni {
namespace {

struct BlockShape {
  int64_t hidden, heads, kv_heads, head_dim, intermediate, B, T;
};

constexpr BlockShape kTiny{256, 4, 2, 64, 768, 4, 256};        // the shipped tiny model's block
constexpr BlockShape kLarger{1024, 16, 8, 128, 3072, 4, 256};  // a Qwen3-0.6B-sized block

Qwen3Config make_config(const BlockShape& s) {
  Qwen3Config c;
  c.architecture = "Qwen3ForCausalLM";
  c.hidden_size = s.hidden;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.intermediate_size = s.intermediate;
  c.num_hidden_layers = 1;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.vocab_size = 64;
  c.max_position_embeddings = s.T;
  return c;
}

std::vector<float> random_vector(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

double block_flops(const BlockShape& s) {
  const double n = static_cast<double>(s.B * s.T);
  const double qo = static_cast<double>(s.heads * s.head_dim), kvo = static_cast<double>(s.kv_heads * s.head_dim);
  const double D = static_cast<double>(s.hidden), I = static_cast<double>(s.intermediate);
  const double linear_kn = D * qo + 2 * D * kvo + qo * D + 3 * D * I;
  const double pairs = static_cast<double>(s.B * s.heads) * static_cast<double>(s.T) * (s.T + 1) / 2.0;
  return 6.0 * n * linear_kn + 14.0 * static_cast<double>(s.head_dim) * pairs;
}

void BM_BlockForwardBackward(benchmark::State& state, BlockShape s) {
  const Qwen3Config config = make_config(s);
  Qwen3BlockWeightsF32 w;
  w.input_layernorm = random_vector(static_cast<size_t>(s.hidden), 1, 0.6f, 1.4f);
  w.post_attention_layernorm = random_vector(static_cast<size_t>(s.hidden), 2, 0.6f, 1.4f);
  w.q_norm = random_vector(static_cast<size_t>(s.head_dim), 3, 0.6f, 1.4f);
  w.k_norm = random_vector(static_cast<size_t>(s.head_dim), 4, 0.6f, 1.4f);
  const int64_t qo = s.heads * s.head_dim, kvo = s.kv_heads * s.head_dim;
  const int64_t nk[7][2] = {{qo, s.hidden}, {kvo, s.hidden}, {kvo, s.hidden}, {s.hidden, qo},
                            {s.intermediate, s.hidden}, {s.intermediate, s.hidden}, {s.hidden, s.intermediate}};
  for (int i = 0; i < 7; ++i) {
    const float r = 1.7f / std::sqrt(static_cast<float>(nk[i][1]));
    w.linears[static_cast<size_t>(i)] =
        random_vector(static_cast<size_t>(nk[i][0] * nk[i][1]), 10 + static_cast<uint32_t>(i), -r, r);
  }
  Qwen3BlockTrainer trainer(config, std::move(w), QuantScheme{4, 128, true});
  for (auto& L : trainer.linears()) L.v = random_vector(L.v.size(), 30, -0.3f, 0.3f);
  trainer.refresh_weights(Qwen3BlockTrainer::WeightMode::FakeQuant);

  const int64_t n = s.B * s.T * s.hidden;
  const std::vector<float> xv = random_vector(static_cast<size_t>(n), 40, -2.f, 2.f);
  const std::vector<float> ref = random_vector(static_cast<size_t>(n), 41, -2.f, 2.f);
  const Tensor x = Tensor::from_f32(xv, {s.B, s.T, s.hidden});
  Tensor dy = Tensor::empty({s.B, s.T, s.hidden}, DType::F32);
  const std::vector<uint8_t> mask = last_token_mask(s.B, s.T);
  for (auto _ : state) {
    trainer.zero_grads();
    const Tensor y = trainer.forward(x, true);
    masked_mse_loss_backward(dy.data<float>(), y.data<float>(), ref.data(), mask.data(), s.B * s.T, s.hidden);
    trainer.backward(dy);
    benchmark::DoNotOptimize(trainer.linears()[0].grad_v.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(block_flops(s) * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["threads"] = num_threads();
}

// The same for the QDQ refresh the tuner does once per step (not in the FLOP count).
void BM_BlockRefreshWeights(benchmark::State& state, BlockShape s) {
  const Qwen3Config config = make_config(s);
  Qwen3BlockWeightsF32 w;
  w.input_layernorm.assign(static_cast<size_t>(s.hidden), 1.f);
  w.post_attention_layernorm = w.input_layernorm;
  w.q_norm.assign(static_cast<size_t>(s.head_dim), 1.f);
  w.k_norm = w.q_norm;
  const int64_t qo = s.heads * s.head_dim, kvo = s.kv_heads * s.head_dim;
  const int64_t nk[7][2] = {{qo, s.hidden}, {kvo, s.hidden}, {kvo, s.hidden}, {s.hidden, qo},
                            {s.intermediate, s.hidden}, {s.intermediate, s.hidden}, {s.hidden, s.intermediate}};
  for (int i = 0; i < 7; ++i)
    w.linears[static_cast<size_t>(i)] = random_vector(static_cast<size_t>(nk[i][0] * nk[i][1]), 50, -0.1f, 0.1f);
  Qwen3BlockTrainer trainer(config, std::move(w), QuantScheme{4, 128, true});
  for (auto _ : state) trainer.refresh_weights(Qwen3BlockTrainer::WeightMode::FakeQuant);
}

// C[M, N] = op(A)·op(B) at the shapes of a Linear's products: "nt" = x·Wᵀ (forward), "nn" = dY·W (dX),
// "tn" = dYᵀ·X (dW).
void BM_GemmF32(benchmark::State& state, bool ta, bool tb) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const std::vector<float> a = random_vector(static_cast<size_t>(M * K), 60, -1.f, 1.f);
  const std::vector<float> b = random_vector(static_cast<size_t>(K * N), 61, -1.f, 1.f);
  std::vector<float> c(static_cast<size_t>(M * N));
  for (auto _ : state) {
    gemm_f32(ta, tb, M, N, K, a.data(), ta ? M : K, b.data(), tb ? K : N, c.data(), N, false);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(M * N * K) * 1e-9 *
                                                     static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
  state.counters["threads"] = num_threads();
}

BENCHMARK_CAPTURE(BM_BlockForwardBackward, tiny_h256_B4_T256, kTiny)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_BlockForwardBackward, h1024_B4_T256, kLarger)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_BlockRefreshWeights, tiny_h256, kTiny)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_BlockRefreshWeights, h1024, kLarger)->Unit(benchmark::kMillisecond)->UseRealTime();
// n = B·T = 1024 tokens against the larger block's MLP shapes, and the tiny block's.
BENCHMARK_CAPTURE(BM_GemmF32, nt, false, true)
    ->Args({1024, 3072, 1024})->Args({1024, 768, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_GemmF32, nn, false, false)
    ->Args({1024, 1024, 3072})->Args({1024, 256, 768})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_GemmF32, tn, true, false)
    ->Args({3072, 1024, 1024})->Args({768, 256, 1024})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace omni

// OMNI_THREADS=n pins the thread pool size (default: all hardware threads), e.g. to compare 1 and 2 threads.
int main(int argc, char** argv) {
  if (const char* t = std::getenv("OMNI_THREADS")) omni::set_num_threads(std::atoi(t));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
