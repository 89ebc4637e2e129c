// Times the CUDA backend's attention forward: every variant of the tensor-core flash kernels (flash_attention.cu:
// mma.sync and wgmma, several tile shapes; the default marked) against the per-row kernel they replace
// (attention_kernel, a warp per (row, head): what attention_impl ran for these shapes before), on FLUX.1's joint
// sequences (Full mask) and LLM prefills (causal, GQA). Prints one markdown table: µs (median), TFLOP/s
// (4·L²·H·hd per sequence for the Full mask, half for causal) and the fraction of the H200's dense BF16 peak
// (989 TFLOP/s), and the NMSE of each flash output against the per-row kernel's (both rounded to BF16/F16, so
// ~1e-5 is agreement). Flags: --quick (FLUX 1024² and the Qwen3 prefill only), --reps N.
//
// Inputs are uniform random, never zero; the flash output is poisoned (NaN bytes) before its first run, so an
// element it fails to write shows as NaN in the NMSE. The K/V of one call are re-read by every query tile, which
// is the kernel's own L2 reuse, so inputs are not rotated.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iterator>
#include <string>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_runtime_info.h"
#include "backends/cuda/kernels/kernels.h"
#include "core/dtype.h"
#include "core/half.h"

namespace omni::cuda {
namespace {

constexpr double kPeakTflops = 989.0;  // H200 SXM dense BF16, datasheet

struct BenchShape {
  const char* name;
  int64_t B, L, Hq, Hkv, hd;
  bool causal;
  DType dt;
};

struct DeviceBuf {
  void* p = nullptr;
  explicit DeviceBuf(size_t bytes) { OMNI_CUDA(cudaMalloc(&p, bytes)); }
  ~DeviceBuf() { cudaFree(p); }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
};

uint16_t to_bits(float x, DType dt) { return dt == DType::BF16 ? f32_to_bf16(x) : f32_to_f16(x); }
float from_bits(uint16_t b, DType dt) { return dt == DType::BF16 ? bf16_to_f32(b) : f16_to_f32(b); }

std::vector<uint16_t> random_values(size_t n, uint64_t seed, DType dt) {
  std::vector<uint16_t> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    const float u = static_cast<float>((s >> 40) & 0xFFFFFF) / 16777216.0f;  // [0, 1)
    x = to_bits(3.0f * u - 1.5f + 1e-3f, dt);
  }
  return v;
}

// Median of `reps` timed runs of f after `warm` untimed ones, in µs.
template <class F>
double time_us(F&& f, int warm, int reps, cudaStream_t s) {
  for (int i = 0; i < warm; ++i) f();
  OMNI_CUDA(cudaStreamSynchronize(s));
  cudaEvent_t a, b;
  OMNI_CUDA(cudaEventCreate(&a));
  OMNI_CUDA(cudaEventCreate(&b));
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    OMNI_CUDA(cudaEventRecord(a, s));
    f();
    OMNI_CUDA(cudaEventRecord(b, s));
    OMNI_CUDA(cudaEventSynchronize(b));
    float ms = 0.f;
    OMNI_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(1e3 * ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double nmse(const std::vector<uint16_t>& x, const std::vector<uint16_t>& ref, DType dt) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double a = from_bits(x[i], dt), r = from_bits(ref[i], dt);
    num += (a - r) * (a - r);
    den += r * r;
  }
  return den > 0 ? num / den : NAN;
}

void check_fault(const DeviceFault* f) {
  DeviceFault h;
  OMNI_CUDA(cudaMemcpy(&h, f, sizeof h, cudaMemcpyDeviceToHost));
  OMNI_CHECK(h.code == 0, "attention_bench: a kernel reported a fault: ", describe_fault(h));
}

void bench(const BenchShape& b, int reps, cudaStream_t s, DeviceFault* fault) {
  const AttentionShape sh{b.B * b.L, b.Hq, b.Hkv, b.hd, b.B, b.L, b.causal};
  const size_t nq = static_cast<size_t>(sh.N * b.Hq * b.hd), nkv = static_cast<size_t>(sh.N * b.Hkv * b.hd);
  DeviceBuf q(nq * 2), k(nkv * 2), v(nkv * 2), out(nq * 2), ref(nq * 2);
  DeviceBuf slot(static_cast<size_t>(sh.N) * 4), pos(static_cast<size_t>(sh.N) * 4);
  {
    std::vector<int32_t> hs(static_cast<size_t>(sh.N)), hp(static_cast<size_t>(sh.N));
    for (int64_t i = 0; i < sh.N; ++i) {  // whole sequences: slot i / L, position i % L
      hs[static_cast<size_t>(i)] = static_cast<int32_t>(i / b.L);
      hp[static_cast<size_t>(i)] = static_cast<int32_t>(i % b.L);
    }
    OMNI_CUDA(cudaMemcpy(slot.p, hs.data(), hs.size() * 4, cudaMemcpyHostToDevice));
    OMNI_CUDA(cudaMemcpy(pos.p, hp.data(), hp.size() * 4, cudaMemcpyHostToDevice));
    const auto hq = random_values(nq, 1, b.dt), hk = random_values(nkv, 2, b.dt), hv = random_values(nkv, 3, b.dt);
    OMNI_CUDA(cudaMemcpy(q.p, hq.data(), nq * 2, cudaMemcpyHostToDevice));
    OMNI_CUDA(cudaMemcpy(k.p, hk.data(), nkv * 2, cudaMemcpyHostToDevice));
    OMNI_CUDA(cudaMemcpy(v.p, hv.data(), nkv * 2, cudaMemcpyHostToDevice));
  }
  const auto* sl = static_cast<const int32_t*>(slot.p);
  const auto* ps = static_cast<const int32_t*>(pos.p);
  const double flops = 4.0 * static_cast<double>(b.L) * b.L * b.Hq * b.hd * b.B * (b.causal ? 0.5 : 1.0);
  const auto row = [&](const std::string& kernel, double us, const char* agree) {
    const double tf = flops / us * 1e-6;
    std::printf("| %s | %s | %s | %.1f | %.1f | %.3f | %s |\n", b.name, std::string(dtype_name(b.dt)).c_str(),
                kernel.c_str(), us, tf, tf / kPeakTflops, agree);
  };

  // The baseline: the per-row kernel. Slow on these shapes, so one warm-up and three timed runs.
  const double old_us = time_us([&] { launch_attention(ref.p, q.p, k.p, v.p, b.dt, sl, ps, sh, nullptr, fault, s); },
                                1, 3, s);
  row("per-row attention_kernel (before)", old_us, "reference");
  std::vector<uint16_t> href(nq), hout(nq);
  OMNI_CUDA(cudaMemcpy(href.data(), ref.p, nq * 2, cudaMemcpyDeviceToHost));

  for (int var = 0; var < flash_attention_variants(b.hd); ++var) {
    OMNI_CUDA(cudaMemset(out.p, 0xFF, nq * 2));  // NaN in BF16 and F16
    launch_flash_attention(out.p, q.p, k.p, v.p, b.dt, sl, ps, sh, fault, s, var);
    OMNI_CUDA(cudaStreamSynchronize(s));
    OMNI_CUDA(cudaMemcpy(hout.data(), out.p, nq * 2, cudaMemcpyDeviceToHost));
    char agree[64];
    std::snprintf(agree, sizeof agree, "NMSE %.2e", nmse(hout, href, b.dt));
    const double us =
        time_us([&] { launch_flash_attention(out.p, q.p, k.p, v.p, b.dt, sl, ps, sh, fault, s, var); }, 3, reps, s);
    const bool is_default = var == flash_attention_default_variant(b.hd);
    row(std::string("flash v") + std::to_string(var) + (is_default ? " (default): " : ": ") +
            flash_attention_variant_name(b.hd, var),
        us, agree);
  }
  check_fault(fault);
  std::fflush(stdout);
}

}  // namespace
}  // namespace omni::cuda

int main(int argc, char** argv) {
  using namespace omni;
  using namespace omni::cuda;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // rows survive a crash or a time limit
  bool quick = false;
  int reps = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--reps N]\n", argv[0]);
      return 2;
    }
  }
  try {
    if (device_count() == 0) {
      std::fprintf(stderr, "attention_bench: no CUDA device\n");
      return 1;
    }
    std::printf("attention forward on %s, median of %d runs (the per-row baseline: of 3)\n\n",
                device_name(0).c_str(), reps);
    std::printf("| shape | dtype | kernel | µs | TFLOP/s | of 989 peak | agreement |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    const BenchShape shapes[] = {
        {"FLUX 1024² B=1 L=4608 H=24 hd=128 full", 1, 4608, 24, 24, 128, false, DType::BF16},
        {"Qwen3-8B prefill L=2048 Hq=32 Hkv=8 hd=128 causal", 1, 2048, 32, 8, 128, true, DType::BF16},
        {"FLUX 512² B=1 L=1536 H=24 hd=128 full", 1, 1536, 24, 24, 128, false, DType::BF16},
        {"FLUX 1024² B=2 L=4608 H=24 hd=128 full", 2, 4608, 24, 24, 128, false, DType::BF16},
        {"FLUX 1024² B=1 L=4608 H=24 hd=128 full", 1, 4608, 24, 24, 128, false, DType::F16},
        {"small LM prefill L=2048 Hq=14 Hkv=2 hd=64 causal", 1, 2048, 14, 2, 64, true, DType::BF16},
        {"CLIP-like B=8 L=77 H=12 hd=64 causal", 8, 77, 12, 12, 64, true, DType::BF16},
    };
    DeviceFault* fault = nullptr;
    OMNI_CUDA(cudaMalloc(&fault, sizeof(DeviceFault)));
    OMNI_CUDA(cudaMemset(fault, 0, sizeof(DeviceFault)));
    cudaStream_t s;
    OMNI_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    for (size_t i = 0; i < std::size(shapes); ++i)
      if (!quick || i < 2) bench(shapes[i], reps, s, fault);
    cudaStreamDestroy(s);
    cudaFree(fault);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
