// Times the CUDA backend's diffusion, text-encoder and VAE ops at the sizes of FLUX.1 at 1024² (BF16 activations;
// the launchers the backend calls, and conv2d.h's conv2d_forward as conv2d_impl runs it; CUDA events, median of
// --reps N runs after 2 warm-ups).
// Prints one markdown table: µs and the rate against the limit that bounds the op, measured in the same run:
//   - conv2d: TFLOP/s (2·Cout·Cin·kh·kw·Ho·Wo) and the ratio to cuBLAS's BF16 GEMM of the same M, N, K alone (the
//     rate an implicit GEMM with free column loads would reach; the gap is the column matrix and the bias);
//   - the bandwidth-bound ops: GB/s of the bytes they must move (inputs read once, outputs written once;
//     group_norm reads x twice) and the fraction of a device-to-device copy's rate;
//   - attention_with_bias (T5-XXL, CLIP): µs only (a small part of an image's time).
// Buffers hold a constant non-zero pattern (timing does not depend on the values; the tests check the results).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "backends/cuda/conv2d.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_runtime_info.h"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

int g_reps = 20;
cudaStream_t g_stream = nullptr;

// A device buffer of the pattern 0x3C bytes: 0.0115 in bf16 (0x3C3C) and f32 (0x3C3C3C3C), never zero.
struct Buf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit Buf(size_t n) : bytes(n) {
    OMNI_CUDA(cudaMalloc(&p, std::max<size_t>(n, 1)));
    OMNI_CUDA(cudaMemset(p, 0x3C, n));
  }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  template <class T = void>
  T* as() const { return static_cast<T*>(p); }
};
size_t bf16_bytes(int64_t n) { return static_cast<size_t>(n) * 2; }
size_t f32_bytes(int64_t n) { return static_cast<size_t>(n) * 4; }

double median_us(const std::function<void()>& op) {
  cudaEvent_t a, b;
  OMNI_CUDA(cudaEventCreate(&a));
  OMNI_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 2; ++i) op();
  std::vector<float> ms;
  for (int i = 0; i < g_reps; ++i) {
    OMNI_CUDA(cudaEventRecord(a, g_stream));
    op();
    OMNI_CUDA(cudaEventRecord(b, g_stream));
    OMNI_CUDA(cudaEventSynchronize(b));
    float t = 0;
    OMNI_CUDA(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  OMNI_CUDA(cudaStreamSynchronize(g_stream));
  OMNI_CUDA(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return 1e3 * ms[ms.size() / 2];
}

void row(const std::string& op, const std::string& shape, double us, const std::string& rate,
         const std::string& limit) {
  std::printf("| %s | %s | %.1f | %s | %s |\n", op.c_str(), shape.c_str(), us, rate.c_str(), limit.c_str());
  std::fflush(stdout);
}

std::string fmt(const char* f, double v) {
  char b[96];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void run() {
  const DType bf = DType::BF16;
  OMNI_CUDA(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  cublasHandle_t h;
  OMNI_CUBLAS(cublasCreate(&h));
  OMNI_CUBLAS(cublasSetStream(h, g_stream));

  std::printf("| op | shape | µs | rate | vs limit |\n|---|---|---|---|---|\n");
  // The copy rate the bandwidth-bound ops are measured against: 1 GiB device to device.
  double copy_gbs = 0;
  {
    const Buf src(size_t{1} << 30), dst(size_t{1} << 30);
    const double us = median_us(
        [&] { OMNI_CUDA(cudaMemcpyAsync(dst.p, src.p, src.bytes, cudaMemcpyDeviceToDevice, g_stream)); });
    copy_gbs = 2.0 * static_cast<double>(src.bytes) / (us * 1e3);
    row("copy (d2d)", "1 GiB", us, fmt("%.0f GB/s", copy_gbs), "1.00");
  }
  auto bw_row = [&](const std::string& op, const std::string& shape, double bytes, const std::function<void()>& f) {
    const double us = median_us(f), gbs = bytes / (us * 1e3);
    row(op, shape, us, fmt("%.0f GB/s", gbs), fmt("%.2f of copy", gbs / copy_gbs));
  };

  // conv2d of the FLUX VAE decoder at 1024² (3×3 "same" unless noted), against cuBLAS's GEMM of its shape alone.
  struct Conv {
    int64_t Cin, Cout, H, k;
  };
  for (const Conv& c : {Conv{16, 512, 128, 3}, Conv{512, 512, 128, 3}, Conv{512, 512, 256, 3}, Conv{512, 256, 512, 3},
                        Conv{256, 256, 512, 3}, Conv{256, 256, 1024, 3}, Conv{256, 128, 1024, 1},
                        Conv{128, 128, 1024, 3}, Conv{128, 3, 1024, 3}}) {
    const Conv2dShape s{1, c.Cin, c.H, c.H, c.Cout, c.k, c.k, c.k / 2};
    const int64_t P = c.H * c.H, K = c.Cin * c.k * c.k;
    const Buf x(bf16_bytes(c.Cin * P)), y(bf16_bytes(c.Cout * P)), w(f32_bytes(c.Cout * K)), b(f32_bytes(c.Cout));
    const Conv2dPlan plan = plan_conv2d(s, bf, conv2d_column_limit());
    const Buf scratch(static_cast<size_t>(plan.scratch_bytes));
    const double us = median_us([&] {
      conv2d_forward(h, g_stream, s, plan, y.p, x.p, bf, w.as<float>(), b.as<float>(), scratch.p);
    });
    const double flop = 2.0 * static_cast<double>(c.Cout) * static_cast<double>(K) * static_cast<double>(P);
    std::string limit = "direct kernel";
    if (c.Cout > kMaxDirectCout) {
      const Buf a(bf16_bytes(P * K)), wt(bf16_bytes(c.Cout * K));
      const float one = 1.f, zero = 0.f;
      const double gemm_us = median_us([&] {
        OMNI_CUBLAS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(P), static_cast<int>(c.Cout),
                                 static_cast<int>(K), &one, a.p, CUDA_R_16BF, static_cast<int>(P), wt.p, CUDA_R_16BF,
                                 static_cast<int>(K), &zero, y.p, CUDA_R_16BF, static_cast<int>(P), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
      });
      limit = fmt("GEMM alone %.1f µs", gemm_us) + fmt(" (%.0f TFLOP/s): op ", flop / (gemm_us * 1e6)) +
              fmt("%.2fx", us / gemm_us);
    }
    row("conv2d " + std::to_string(c.k) + "x" + std::to_string(c.k),
        std::to_string(c.Cin) + "->" + std::to_string(c.Cout) + " @" + std::to_string(c.H) + "²", us,
        fmt("%.0f TFLOP/s", flop / (us * 1e6)), limit);
  }

  // group_norm: 32 groups, affine; x read twice (the statistics, then the normalisation), y written once.
  for (const Conv& c : {Conv{128, 0, 1024, 0}, Conv{256, 0, 512, 0}, Conv{512, 0, 128, 0}}) {
    const int64_t S = c.H * c.H, n = c.Cin * S;
    const Buf x(bf16_bytes(n)), y(bf16_bytes(n)), w(f32_bytes(c.Cin)), b(f32_bytes(c.Cin));
    const GroupNormPlan plan = plan_group_norm(1, c.Cin, S, 32);
    const Buf scratch(f32_bytes(plan.scratch_floats));
    bw_row("group_norm", std::to_string(c.Cin) + " ch @" + std::to_string(c.H) + "², 32 groups",
           3.0 * static_cast<double>(bf16_bytes(n)), [&] {
             launch_group_norm(y.p, x.p, bf, 1, c.Cin, S, 32, 1e-6f, w.as<float>(), b.as<float>(), plan,
                               scratch.as<float>(), g_stream);
           });
  }
  {
    const Buf x(bf16_bytes(256 * 512 * 512)), y(bf16_bytes(256 * 1024 * 1024));
    bw_row("upsample_nearest2x", "256 ch 512² -> 1024²", static_cast<double>(x.bytes + y.bytes),
           [&] { launch_upsample_nearest2x(y.p, x.p, 2, 256, 512, 512, g_stream); });
  }
  {
    const Buf x(bf16_bytes(512 * 16384)), y(bf16_bytes(512 * 16384));
    bw_row("transpose", "[1, 512, 16384]", static_cast<double>(2 * x.bytes),
           [&] { launch_transpose_last2(y.p, x.p, 2, 1, 512, 16384, g_stream); });
  }
  {  // FLUX.1's joint sequence at 1024²: 4096 image + 512 text tokens of 3072
    const int64_t T = 4608, D = 3072, n = T * D;
    const Buf x(bf16_bytes(n)), h2(bf16_bytes(n)), y(bf16_bytes(n)), g(bf16_bytes(D));
    const double nb = static_cast<double>(bf16_bytes(n));
    bw_row("silu", "[1, 4608, 3072]", 2 * nb, [&] { launch_silu(y.p, x.p, n, bf, g_stream); });
    bw_row("quick_gelu", "[1, 4608, 3072]", 2 * nb, [&] { launch_quick_gelu(y.p, x.p, n, bf, g_stream); });
    bw_row("mul", "[1, 4608, 3072]", 3 * nb, [&] { launch_mul(y.p, x.p, h2.p, n, bf, g_stream); });
    bw_row("gated_add", "[1, 4608, 3072]", 3 * nb,
           [&] { launch_gated_add(y.p, x.p, g.p, h2.p, 1, T, D, bf, g_stream); });
    const Buf cs(f32_bytes(T * 128)), sn(f32_bytes(T * 128));
    bw_row("rope_interleaved", "[4608, 24, 128]", 2 * nb + 2.0 * static_cast<double>(cs.bytes),
           [&] { launch_rope_interleaved(y.p, cs.as<float>(), sn.as<float>(), T, 24, 128, bf, g_stream); });
  }
  struct Attn {
    const char* name;
    int64_t L, H, hd;
  };
  for (const Attn& a : {Attn{"T5-XXL", 512, 64, 64}, Attn{"CLIP-L", 77, 12, 64}}) {
    const int64_t n = a.L * a.H * a.hd;
    const Buf q(bf16_bytes(n)), k(bf16_bytes(n)), v(bf16_bytes(n)), out(bf16_bytes(n)),
        bias(f32_bytes(a.H * a.L * a.L));
    const double us = median_us([&] {
      launch_attention_with_bias(out.p, q.p, k.p, v.p, bias.as<float>(), 1, a.L, a.L, a.H, a.hd, false, 1.0f, bf,
                                 g_stream);
    });
    const double flop = 4.0 * static_cast<double>(a.L * a.L * a.H * a.hd);
    row(std::string("attention_with_bias ") + a.name,
        "L " + std::to_string(a.L) + ", " + std::to_string(a.H) + " heads of " + std::to_string(a.hd), us,
        fmt("%.1f TFLOP/s", flop / (us * 1e6)), "-");
  }
  cublasDestroy(h);
  cudaStreamDestroy(g_stream);
}

}  // namespace
}  // namespace omni::cuda

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) omni::cuda::g_reps = std::max(1, std::atoi(argv[++i]));
  try {
    if (omni::cuda::device_count() == 0) {
      std::printf("diffusion_ops_bench: no CUDA device\n");
      return 0;
    }
    omni::cuda::run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "diffusion_ops_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
