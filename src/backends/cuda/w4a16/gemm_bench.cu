#include "backends/cuda/w4a16/gemm_bench.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "backends/cuda/w4a16/w4a16_gemm.h"
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

__device__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9e3779b97f4a7c15ull + seed * 0xbf58476d1ce4e5b9ull + 1;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}
__global__ void fill_u32(uint32_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x)
    p[i] = hash32(i, seed);
}
// Values of magnitude lo..hi with random sign, as f16 (is_bf16 = false) or bf16 bits.
__global__ void fill_real(uint16_t* p, size_t n, uint32_t seed, float lo, float hi, bool is_bf16) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x) {
    const uint32_t h = hash32(i, seed);
    float v = lo + (hi - lo) * static_cast<float>(h >> 8) * (1.f / 16777216.f);
    if (h & 1u) v = -v;
    p[i] = is_bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
  }
}

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { check(cudaMalloc(&p, std::max<size_t>(bytes, 16)), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

void random_u32(void* p, size_t n, uint32_t seed, cudaStream_t s) {
  fill_u32<<<1024, 256, 0, s>>>(static_cast<uint32_t*>(p), n, seed);
  check(cudaGetLastError(), "fill_u32 launch");
}
void random_real(void* p, size_t n, uint32_t seed, float lo, float hi, bool bf16, cudaStream_t s) {
  fill_real<<<1024, 256, 0, s>>>(static_cast<uint16_t*>(p), n, seed, lo, hi, bf16);
  check(cudaGetLastError(), "fill_real launch");
}

// Device time of one call of `op(i)` (i counts the calls, for rotating inputs): calls are captured into a CUDA
// graph (launch gaps are not measured), the graph is replayed `replays` times and the median replay over the calls
// per graph is returned, in microseconds.
double time_us(const std::function<void(int)>& op, double graph_ms, int replays, cudaStream_t s) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  // Warm-up and a first estimate outside any graph.
  for (int i = 0; i < 3; ++i) op(i);
  check(cudaEventRecord(a, s), "cudaEventRecord");
  for (int i = 0; i < 5; ++i) op(i);
  check(cudaEventRecord(b, s), "cudaEventRecord");
  check(cudaEventSynchronize(b), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  const int calls = std::clamp(static_cast<int>(graph_ms / std::max(ms / 5, 1e-4f)), 4, 400);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  for (int i = 0; i < calls; ++i) op(i);
  check(cudaStreamEndCapture(s, &graph), "cudaStreamEndCapture");
  check(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  check(cudaGraphLaunch(exec, s), "cudaGraphLaunch");  // warm-up replay
  std::vector<double> us;
  for (int r = 0; r < replays; ++r) {
    check(cudaEventRecord(a, s), "cudaEventRecord");
    check(cudaGraphLaunch(exec, s), "cudaGraphLaunch");
    check(cudaEventRecord(b, s), "cudaEventRecord");
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    us.push_back(1000.0 * ms / calls);
  }
  check(cudaGraphExecDestroy(exec), "cudaGraphExecDestroy");
  check(cudaGraphDestroy(graph), "cudaGraphDestroy");
  check(cudaEventDestroy(a), "cudaEventDestroy");
  check(cudaEventDestroy(b), "cudaEventDestroy");
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

__global__ void copy_kernel(const uint4* src, uint4* dst, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x)
    dst[i] = src[i];
}

// Device-to-device copy of 1 GiB, bytes read plus bytes written over the time, in TB/s: through cudaMemcpyAsync
// (a graph memcpy node) and through a plain 16-byte copy kernel; the larger is the ceiling the table uses.
struct CopyBandwidth {
  double memcpy_tbs = 0, kernel_tbs = 0;
  double best() const { return std::max(memcpy_tbs, kernel_tbs); }
};
CopyBandwidth copy_bandwidth(cudaStream_t s, const GemmBenchOptions& o, int sms) {
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer src(bytes), dst(bytes);
  random_u32(src.p, bytes / 4, 1, s);
  CopyBandwidth c;
  const double us_memcpy = time_us(
      [&](int) { check(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice, s), "cudaMemcpyAsync"); }, 20.0,
      o.replays, s);
  const double us_kernel = time_us(
      [&](int) {
        copy_kernel<<<sms * 8, 512, 0, s>>>(static_cast<const uint4*>(src.p), static_cast<uint4*>(dst.p), bytes / 16);
        check(cudaGetLastError(), "copy_kernel launch");
      },
      20.0, o.replays, s);
  c.memcpy_tbs = 2.0 * bytes / (us_memcpy * 1e-6) / 1e12;
  c.kernel_tbs = 2.0 * bytes / (us_kernel * 1e-6) / 1e12;
  return c;
}

struct LayerShape {
  const char* name;
  int64_t N, K;  // out x in
};

constexpr size_t kRotateBytes = size_t{256} << 20;  // weight copies per shape exceed the 60 MB L2 several times

}  // namespace

std::string run_gemm_bench(const GemmBenchOptions& o) {
  cudaStream_t s;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  cublasHandle_t blas;
  check_blas(cublasCreate(&blas), "cublasCreate");
  check_blas(cublasSetStream(blas, s), "cublasSetStream");
  DeviceBuffer blas_ws(size_t{64} << 20);
  check_blas(cublasSetWorkspace(blas, blas_ws.p, size_t{64} << 20), "cublasSetWorkspace");

  cudaDeviceProp prop{};
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
  const CopyBandwidth copy = copy_bandwidth(s, o, prop.multiProcessorCount);
  const double copy_tbs = copy.best();

  std::vector<LayerShape> shapes = {
      {"Qwen3-8B q/o", 4096, 4096},     {"Qwen3-8B kv", 1024, 4096},     {"Qwen3-8B gate/up", 12288, 4096},
      {"Qwen3-8B down", 4096, 12288},   {"Qwen3-30B-A3B expert", 768, 2048}, {"Qwen3-30B-A3B expert down", 2048, 768},
      {"FLUX.1 mlp up", 12288, 3072},   {"FLUX.1 mlp down", 3072, 12288}, {"Llama-70B-class", 28672, 8192}};
  std::vector<int64_t> Ms = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096};
  if (o.quick) {
    shapes = {{"Qwen3-8B q/o", 4096, 4096}, {"Qwen3-8B gate/up", 12288, 4096}, {"Llama-70B-class", 28672, 8192}};
    Ms = {1, 16, 64, 1024};
  }
  if (o.only_n > 0) {
    OMNI_CHECK(o.only_k > 0 && o.only_m > 0, "gemm bench: a single point needs N, K and M");
    shapes = {{"selected", o.only_n, o.only_k}};
    Ms = {o.only_m};
  }

  std::string out;
  char line[1024];
  std::snprintf(line, sizeof line,
                "GPU: %s, %d SMs. Device-to-device copy of 1 GiB (read+write): %.2f TB/s through cudaMemcpyAsync, "
                "%.2f TB/s through a copy kernel; %% of copy BW below is against %.2f TB/s. W4A16: symmetric int4, group "
                "128, f16 scales, BF16 activations; baseline cuBLAS cublasGemmEx BF16 in/out, F32 compute. Times: "
                "median of %d CUDA-graph replays, weights rotated over >= %zu MB of copies. Both W4A16 paths are timed "
                "(fused mma.sync kernel; dequantise to BF16 + cuBLAS, from M = 16 on); the W4A16 column is the one "
                "w4a16_gemm dispatches to (by M and the weight's size), speedup and rates are for it.\n\n",
                prop.name, prop.multiProcessorCount, copy.memcpy_tbs, copy.kernel_tbs, copy_tbs, o.replays,
                kRotateBytes >> 20);
  out += line;
  out += "For M <= 16 the fused path is the decode kernel (w4a16_decode.cu), launched with programmatic dependent "
         "launch (PDL: a call's first weight loads overlap the previous call's tail); 'no PDL' times it launched "
         "plainly, 'folded dq' with the folded dequantisation (zero point times sum(x) once per group) instead of the per-pair q - z, 'v3' the split-K "
         "kernel of v3 at the same M. Plan: blocks per cluster (K split) x clusters, rounds (strips per cluster).\n\n";
  out += "| layer | N x K | M | W4A16 us | fused us | no PDL us | folded dq us | v3 split-K us | dequant+cuBLAS us | "
         "cuBLAS BF16 us | speedup | W4A16 TB/s | % of copy BW | W4A16 TFLOP/s | cuBLAS TB/s | plan |\n";
  out += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";

  const int64_t max_m = *std::max_element(Ms.begin(), Ms.end());
  std::string noise;  // the first point timed twice: the difference is the run's noise
  for (const LayerShape& L : shapes) {
    const int64_t N = L.N, K = L.K, gs = 128, G = K / gs;
    // A repacked weight with random codes and scales (the kernel's layout; all codes are as likely as in a real
    // checkpoint, so the timing is the same as for a repacked checkpoint).
    const size_t q_bytes = static_cast<size_t>(N * K / 2), s_bytes = static_cast<size_t>(G * N * 2);
    const int copies = static_cast<int>(std::max<size_t>(2, (kRotateBytes + q_bytes - 1) / q_bytes));
    const size_t w16_bytes = static_cast<size_t>(N * K * 2);
    const int copies16 = static_cast<int>(std::max<size_t>(2, (kRotateBytes + w16_bytes - 1) / w16_bytes));
    std::vector<std::unique_ptr<DeviceBuffer>> qb, sb, wb;
    std::vector<W4A16DeviceWeights> dw;
    for (int c = 0; c < copies; ++c) {
      qb.push_back(std::make_unique<DeviceBuffer>(q_bytes));
      sb.push_back(std::make_unique<DeviceBuffer>(s_bytes));
      random_u32(qb.back()->p, q_bytes / 4, 10 + c, s);
      random_real(sb.back()->p, s_bytes / 2, 100 + c, 0.005f, 0.03f, false, s);
      W4A16DeviceWeights w;
      w.in_features = K;
      w.out_features = N;
      w.group_size = gs;
      w.num_groups = G;
      w.qweight = static_cast<const uint32_t*>(qb.back()->p);
      w.scales = static_cast<const uint16_t*>(sb.back()->p);
      dw.push_back(w);
    }
    for (int c = 0; c < copies16; ++c) {
      wb.push_back(std::make_unique<DeviceBuffer>(w16_bytes));
      random_real(wb.back()->p, w16_bytes / 2, 1000 + c, 0.001f, 0.05f, true, s);
    }
    DeviceBuffer x(static_cast<size_t>(max_m * K * 2)), y(static_cast<size_t>(max_m * N * 2));
    random_real(x.p, static_cast<size_t>(max_m * K), 7, 0.1f, 2.f, true, s);
    size_t ws_bytes = 0;
    for (int64_t M : Ms)
      for (W4A16Path path : {W4A16Path::Auto, W4A16Path::Mma, W4A16Path::DequantBlas, W4A16Path::MmaSplitK})
        ws_bytes = std::max(ws_bytes, w4a16_workspace_bytes_for(M, dw[0], path));
    DeviceBuffer ws(ws_bytes);
    check(cudaStreamSynchronize(s), "weight fill");

    for (int64_t M : Ms) {
      auto time_path = [&](W4A16Path path) {
        return time_us(
            [&](int i) {
              w4a16_gemm_path(dw[static_cast<size_t>(i % copies)], x.p, y.p, M, ActDType::BF16, nullptr, ws.p,
                              ws_bytes, s, path);
            },
            o.graph_ms, o.replays, s);
      };
      const bool decode = M <= kW4DecodeMaxM && w4a16_decode_supports(M, dw[0]);
      const double mma_us = time_path(W4A16Path::Mma);
      double nopdl_us = 0, plain_us = 0, v3_us = 0;
      if (decode) {
        w4a16_set_pdl(false);
        nopdl_us = time_path(W4A16Path::Mma);
        w4a16_set_pdl(true);
        w4a16_set_decode_fold(true);
        plain_us = time_path(W4A16Path::Mma);
        w4a16_set_decode_fold(false);
        v3_us = time_path(W4A16Path::MmaSplitK);
      }
      const double dq_us = M >= 16 ? time_path(W4A16Path::DequantBlas) : 0.0;
      const double w4_us = time_path(W4A16Path::Auto);  // what w4a16_gemm dispatches to
      if (noise.empty()) {
        const double again = time_path(W4A16Path::Mma);
        std::snprintf(line, sizeof line, "\nNoise: %s M = %lld (fused) timed twice: %.2f us and %.2f us.\n", L.name,
                      static_cast<long long>(M), mma_us, again);
        noise = line;
      }
      const float alpha = 1.f, beta = 0.f;
      const double bf_us = time_us(
          [&](int i) {
            check_blas(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
                                    static_cast<int>(K), &alpha, wb[static_cast<size_t>(i % copies16)]->p, CUDA_R_16BF,
                                    static_cast<int>(K), x.p, CUDA_R_16BF, static_cast<int>(K), &beta, y.p,
                                    CUDA_R_16BF, static_cast<int>(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                       "cublasGemmEx");
          },
          o.graph_ms, o.replays, s);
      const double io = static_cast<double>(M) * (K + N) * 2;
      const double w4_bytes = static_cast<double>(q_bytes + s_bytes) + io;
      const double bf_bytes = static_cast<double>(w16_bytes) + io;
      const double flops = 2.0 * M * N * K;
      const double w4_tbs = w4_bytes / (w4_us * 1e-6) / 1e12;
      auto cell = [](char (&buf)[32], bool have, double v) {
        if (have) std::snprintf(buf, sizeof buf, "%.2f", v);
        else std::snprintf(buf, sizeof buf, "-");
      };
      char dq_text[32], nopdl_text[32], plain_text[32], v3_text[32];
      cell(dq_text, M >= 16, dq_us);
      cell(nopdl_text, decode, nopdl_us);
      cell(plain_text, decode, plain_us);
      cell(v3_text, decode, v3_us);
      const std::string plan = decode ? w4a16_decode_plan(M, dw[0]) : std::string("-");
      std::snprintf(line, sizeof line,
                    "| %s | %lld x %lld | %lld | %.2f | %.2f | %s | %s | %s | %s | %.2f | %.2fx | %.2f | %.0f %% | %.1f | "
                    "%.2f | %s |\n",
                    L.name, static_cast<long long>(N), static_cast<long long>(K), static_cast<long long>(M), w4_us,
                    mma_us, nopdl_text, plain_text, v3_text, dq_text, bf_us, bf_us / w4_us, w4_tbs,
                    100.0 * w4_tbs / copy_tbs, flops / (w4_us * 1e-6) / 1e12, bf_bytes / (bf_us * 1e-6) / 1e12,
                    plan.c_str());
      out += line;
      std::fputs(line, stderr);  // progress, in case a run is cut short
    }
  }
  out += noise;
  check_blas(cublasDestroy(blas), "cublasDestroy");
  check(cudaStreamDestroy(s), "cudaStreamDestroy");
  return out;
}

}  // namespace omni::cuda
