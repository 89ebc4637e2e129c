// CPU matmul benchmark: W4A16 vs BF16 vs F32 weights at small batch, plus the machine's streaming read
// bandwidth measured in the same run. Weights are rotated over several copies (>= 512 MiB in total) so each
// call reads them from DRAM, not from cache. The "GB/s" counter is weight bytes read per second; W4A16 counts
// 0.5 byte per weight plus its f16 scales (group 128, symmetric: no zero points are read).
//
//   build-cpu/matmul_bench --benchmark_min_time=1 --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/read_bandwidth.h"
#include "backends/cpu/w4a16_matmul.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

constexpr int64_t kGroup = 128;
constexpr size_t kRotationBytes = size_t{512} << 20;

size_t copies_for(size_t bytes) { return std::max<size_t>(2, (kRotationBytes + bytes - 1) / bytes); }

std::vector<float> random_vector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void set_counters(benchmark::State& state, double weight_bytes) {
  state.counters["GB/s"] = benchmark::Counter(weight_bytes * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["threads"] = num_threads();
}

// Args: M, N, K.
void BM_MatmulF32(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const size_t n = static_cast<size_t>(N * K);
  const size_t copies = copies_for(n * sizeof(float));
  std::vector<std::vector<float>> w(copies, random_vector(n, 1));
  const auto x = random_vector(static_cast<size_t>(M * K), 2);
  std::vector<float> y(static_cast<size_t>(M * N));
  size_t i = 0;
  for (auto _ : state) {
    matmul_f32_weights(y.data(), x.data(), w[i++ % copies].data(), nullptr, M, K, N);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, static_cast<double>(n) * 4.0);
}

void BM_MatmulBF16(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const size_t n = static_cast<size_t>(N * K);
  const size_t copies = copies_for(n * sizeof(uint16_t));
  const auto wf = random_vector(n, 1);
  std::vector<uint16_t> wb(n);
  for (size_t j = 0; j < n; ++j) wb[j] = f32_to_bf16(wf[j]);
  std::vector<std::vector<uint16_t>> w(copies, wb);
  const auto x = random_vector(static_cast<size_t>(M * K), 2);
  std::vector<float> y(static_cast<size_t>(M * N));
  size_t i = 0;
  for (auto _ : state) {
    matmul_bf16_weights(y.data(), x.data(), w[i++ % copies].data(), nullptr, M, K, N);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, static_cast<double>(n) * 2.0);
}

W4A16CpuWeights make_w4(int64_t N, int64_t K) {
  GroupedIntWeight g;
  g.in_features = K;
  g.out_features = N;
  g.group_size = kGroup;
  g.qweight = Tensor::empty({K / 8, N}, DType::I32);
  std::mt19937 rng(3);
  uint32_t* qw = g.qweight.data<uint32_t>();
  for (int64_t i = 0; i < K / 8 * N; ++i) qw[i] = static_cast<uint32_t>(rng());
  g.scales = Tensor::empty({K / kGroup, N}, DType::F16);
  const auto s = random_vector(static_cast<size_t>(K / kGroup * N), 4);
  for (size_t i = 0; i < s.size(); ++i) g.scales.data<uint16_t>()[i] = f32_to_f16(0.01f * s[i]);
  g.zeros = Tensor::empty({K / kGroup, N}, DType::U8);
  std::memset(g.zeros.raw(), 8, g.zeros.nbytes());
  return pack_w4a16_cpu(g);
}

void run_w4a16(benchmark::State& state, W4A16Activations activations) {
  set_w4a16_cpu_activations(activations);
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const double bytes = static_cast<double>(N * K) * (0.5 + 2.0 / kGroup);
  const size_t copies = copies_for(static_cast<size_t>(bytes));
  const W4A16CpuWeights first = make_w4(N, K);
  std::vector<W4A16CpuWeights> w(copies, first);
  for (auto& c : w) {  // separate memory per copy (the struct shares tensor storage)
    c.codes = first.codes.clone();
    c.scales = first.scales.clone();
    c.zeros = first.zeros.clone();
  }
  const auto x = random_vector(static_cast<size_t>(M * K), 2);
  std::vector<float> y(static_cast<size_t>(M * N));
  size_t i = 0;
  for (auto _ : state) {
    w4a16_matmul(y.data(), x.data(), w[i++ % copies], nullptr, M);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, bytes);
  set_w4a16_cpu_activations(W4A16Activations::Int16);
}

// The default kernels: 16-bit integer activations for small batches, the f32 GEMM for prefill.
void BM_MatmulW4A16(benchmark::State& state) { run_w4a16(state, W4A16Activations::Int16); }
// Exact f32 activations in the small-batch kernels (the reference path).
void BM_MatmulW4A16F32Act(benchmark::State& state) { run_w4a16(state, W4A16Activations::F32); }

// Streaming read of 1 GiB with all threads (backends/cpu/read_bandwidth.h): the bandwidth the memory-bound
// kernels are measured against.
void BM_MemoryReadBandwidth(benchmark::State& state) {
  const size_t bytes = size_t{1} << 30;
  std::vector<uint64_t> buf(bytes / sizeof(uint64_t));
  for (size_t j = 0; j < buf.size(); ++j) buf[j] = j * 2654435761u;
  for (auto _ : state) benchmark::DoNotOptimize(cpu_read_pass(buf.data(), bytes));
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(bytes) * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["threads"] = num_threads();
}

void shapes(benchmark::internal::Benchmark* b) {
  for (auto nk : std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {12288, 4096}, {4096, 12288}})
    for (int64_t m : {1, 8, 64}) b->Args({m, nk.first, nk.second});
  b->ArgNames({"M", "N", "K"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

// Decode (M = 1) on the layers of a Qwen3-0.6B-shaped model (hidden 1024, intermediate 3072, 16/8 heads × 128,
// vocab 8192): q, k/v, o, gate/up, down and the LM head, where per-call overheads weigh more than on big layers.
void small_shapes(benchmark::internal::Benchmark* b) {
  for (auto nk : std::vector<std::pair<int64_t, int64_t>>{{2048, 1024}, {1024, 1024}, {1024, 2048}, {3072, 1024},
                                                          {1024, 3072}, {8192, 1024}})
    b->Args({1, nk.first, nk.second});
  b->ArgNames({"M", "N", "K"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_MemoryReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MatmulW4A16)->Apply(shapes);
BENCHMARK(BM_MatmulW4A16F32Act)->Apply(shapes);
BENCHMARK(BM_MatmulBF16)->Apply(shapes);
BENCHMARK(BM_MatmulF32)->Apply(shapes);
BENCHMARK(BM_MatmulW4A16)->Apply(small_shapes);
BENCHMARK(BM_MatmulBF16)->Apply(small_shapes);

}  // namespace
}  // namespace omni

// --threads=N sets the pool size (default: the machine's cores), --isa=scalar|avx2|avx512 the SIMD path (default:
// the fastest compiled); the rest goes to Google Benchmark.
int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      omni::set_num_threads(std::atoi(argv[i] + 10));
    } else if (std::strncmp(argv[i], "--isa=", 6) == 0) {
      bool found = false;
      for (omni::CpuIsa isa : omni::compiled_cpu_isas())
        if (omni::cpu_isa_name(isa) == argv[i] + 6) {
          omni::set_active_cpu_isa(isa);
          found = true;
        }
      if (!found) {
        std::fprintf(stderr, "matmul_bench: --isa=%s is not compiled into this binary\n", argv[i] + 6);
        return 1;
      }
    } else {
      rest.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
