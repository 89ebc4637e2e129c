// The CUDA W4A16 path: the repack against an independent packer written here from the layout described in
// w4a16_layout.h (bit for bit, runs without a GPU), and the GEMM against an F64 CPU product of the same rounded x
// with the exactly dequantised weight, on fresh random inputs, outputs poisoned with NaN first.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/cuda_runtime_info.h"
#include "backends/cuda/w4a16/w4a16_gemm.h"
#include "backends/cuda/w4a16/w4a16_paths.h"
#include "backends/cuda/w4a16/w4a16_layout.h"
#include "core/error.h"
#include "core/half.h"

namespace omni::cuda {
namespace {

// A random GPTQ-convention weight (arrays owned here, viewed by W4A16SourceView).
struct GptqWeight {
  int64_t K = 0, N = 0, gs = 0, G = 0;
  std::vector<uint32_t> qweight;  // [K/8, N]
  std::vector<uint16_t> scales;   // f16 [G, N]
  std::vector<uint8_t> zeros;     // [G, N]
  std::vector<int32_t> g_idx;     // [K] or empty
  uint32_t code(int64_t k, int64_t n) const { return (qweight[(k / 8) * N + n] >> (4 * (k % 8))) & 0xfu; }
  int64_t group(int64_t k) const { return g_idx.empty() ? k / gs : g_idx[k]; }
  double weight(int64_t n, int64_t k) const {  // W[n, k], exact
    const int64_t g = group(k);
    return static_cast<double>(f16_to_f32(scales[g * N + n])) * (static_cast<double>(code(k, n)) - zeros[g * N + n]);
  }
  W4A16SourceView view() const {
    W4A16SourceView v;
    v.bits = 4;
    v.in_features = K;
    v.out_features = N;
    v.group_size = gs;
    v.qweight = qweight.data();
    v.scales = scales.data();
    v.zeros = zeros.data();
    v.g_idx = g_idx.empty() ? nullptr : g_idx.data();
    return v;
  }
};

// group_size <= 0 means per channel (K). act_order: each group keeps group_size members, shuffled over K.
GptqWeight random_weight(int64_t N, int64_t K, int64_t group_size, bool symmetric, bool act_order, uint32_t seed) {
  std::mt19937 rng(seed);
  GptqWeight w;
  w.K = K;
  w.N = N;
  w.gs = group_size > 0 ? group_size : K;
  w.G = (K + w.gs - 1) / w.gs;
  w.qweight.resize(static_cast<size_t>(K / 8 * N));
  for (uint32_t& q : w.qweight) q = static_cast<uint32_t>(rng());
  std::uniform_real_distribution<float> mag(0.005f, 0.03f);
  w.scales.resize(static_cast<size_t>(w.G * N));
  for (uint16_t& s : w.scales) s = f32_to_f16((rng() & 1) ? mag(rng) : -mag(rng));
  w.zeros.resize(static_cast<size_t>(w.G * N));
  for (uint8_t& z : w.zeros) z = symmetric ? 8 : static_cast<uint8_t>(rng() % 16);
  if (act_order) {
    w.g_idx.resize(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) w.g_idx[k] = static_cast<int32_t>(k / w.gs);
    std::shuffle(w.g_idx.begin(), w.g_idx.end(), rng);
  }
  return w;
}

// The layout of w4a16_layout.h, written from the source element's side: where does code (k, n) go?
W4A16Repacked reference_repack(const GptqWeight& w) {
  const int64_t K = w.K, N = w.N, G = w.G;
  W4A16Repacked r;
  // Act-order: position of input k after a stable counting sort by group.
  std::vector<int64_t> sorted_pos(static_cast<size_t>(K));
  bool identity = true;
  for (int64_t k = 0; k < K; ++k) identity = identity && w.group(k) == k / w.gs;
  if (!w.g_idx.empty() && !identity) {
    std::vector<int64_t> start(static_cast<size_t>(G + 1), 0);
    for (int64_t k = 0; k < K; ++k) ++start[w.group(k) + 1];
    for (int64_t g = 0; g < G; ++g) start[g + 1] += start[g];
    for (int64_t k = 0; k < K; ++k) sorted_pos[k] = start[w.group(k)]++;
    r.perm.assign(static_cast<size_t>(K), -1);
    for (int64_t k = 0; k < K; ++k) r.perm[sorted_pos[k]] = static_cast<int32_t>(k);
  } else {
    std::iota(sorted_pos.begin(), sorted_pos.end(), int64_t{0});
  }
  r.qweight.assign(static_cast<size_t>(N * K / 8), 0u);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t kk = sorted_pos[k], kt = kk / 16, row = kk % 16;
      const int64_t strip = n / 64, j = (n % 64) / 16, h = (n % 16) / 8, c = n % 8;
      const int64_t t = (row % 8) / 2, reg = row / 8, pair = row % 2;
      const int64_t lane = 4 * c + t, nibble = 2 * h + reg + 4 * pair;
      r.qweight[((strip * (K / 16) + kt) * 32 + lane) * 4 + j] |= w.code(k, n) << (4 * nibble);
    }
  bool sym = true;
  for (uint8_t z : w.zeros) sym = sym && z == 8;
  r.scales.assign(static_cast<size_t>(G * N), 0);
  if (!sym) r.zeros.assign(static_cast<size_t>(G * N / 8), 0u);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t strip = n / 64, j = (n % 64) / 16, h = (n % 16) / 8, c = n % 8, i = 2 * j + h;
      r.scales[g * N + strip * 64 + 8 * c + i] = w.scales[g * N + n];
      if (!sym) r.zeros[g * (N / 8) + strip * 8 + c] |= uint32_t{w.zeros[g * N + n]} << (4 * i);
    }
  r.symmetric = sym;
  return r;
}

void expect_same_repack(const W4A16Repacked& got, const W4A16Repacked& want, const std::string& what) {
  EXPECT_EQ(got.symmetric, want.symmetric) << what;
  EXPECT_TRUE(got.qweight == want.qweight) << what << ": qweight differs";
  EXPECT_TRUE(got.scales == want.scales) << what << ": scales differ";
  EXPECT_TRUE(got.zeros == want.zeros) << what << ": zeros differ";
  EXPECT_TRUE(got.perm == want.perm) << what << ": perm differs";
}

TEST(W4A16Repack, BitExactAgainstIndependentPacker) {
  struct Shape { int64_t N, K, gs; bool sym, act; };
  const Shape shapes[] = {{64, 32, 32, true, false},   {128, 256, 64, false, false}, {192, 320, 32, false, true},
                          {256, 512, 128, true, true}, {320, 160, -1, false, false}, {64, 4096, 128, false, true},
                          {512, 96, 32, true, false}};
  uint32_t seed = 1;
  for (const Shape& s : shapes) {
    const GptqWeight w = random_weight(s.N, s.K, s.gs, s.sym, s.act, seed++);
    const std::string what = "N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) + " gs=" + std::to_string(s.gs);
    std::string why;
    ASSERT_TRUE(w4a16_kernel_supports(w.view(), &why)) << what << ": " << why;
    const W4A16Repacked got = repack_w4a16(w.view());
    expect_same_repack(got, reference_repack(w), what);
    EXPECT_EQ(got.perm.empty(), !s.act) << what;
  }
}

TEST(W4A16Repack, GIdxEqualToKOverGroupSizeNeedsNoPermutation) {
  GptqWeight w = random_weight(128, 256, 64, false, false, 99);
  w.g_idx.resize(256);
  for (int k = 0; k < 256; ++k) w.g_idx[k] = k / 64;
  EXPECT_TRUE(repack_w4a16(w.view()).perm.empty());
}

TEST(W4A16Repack, UnsupportedWeightsAreReportedWithAReason) {
  auto expect_no = [](const GptqWeight& w, int bits, const char* what) {
    W4A16SourceView v = w.view();
    v.bits = bits;
    std::string why;
    EXPECT_FALSE(w4a16_kernel_supports(v, &why)) << what;
    EXPECT_FALSE(why.empty()) << what;
    EXPECT_THROW(repack_w4a16(v), Error) << what;
  };
  expect_no(random_weight(100, 128, 32, true, false, 5), 4, "N not a multiple of 64");
  expect_no(random_weight(128, 48, 16, true, false, 6), 4, "K not a multiple of 32");
  expect_no(random_weight(128, 256, 48, true, false, 7), 4, "group size 48");
  expect_no(random_weight(128, 384, 96, true, false, 11), 4, "group size 96 (not a power of two)");
  expect_no(random_weight(128, 256, 32, true, false, 8), 8, "8-bit");
  GptqWeight unequal = random_weight(128, 256, 64, false, true, 9);
  unequal.g_idx[0] = (unequal.g_idx[0] + 1) % 4;  // one group gets 65 inputs, another 63
  expect_no(unequal, 4, "act-order groups of unequal size");
  GptqWeight bad_zero = random_weight(128, 256, 64, false, false, 10);
  bad_zero.zeros[3] = 16;
  expect_no(bad_zero, 4, "zero point 16");
}

// ---- GEMM on the device ----------------------------------------------------------------------------------------

void cuda_ok(cudaError_t e, const char* what) { OMNI_CHECK(e == cudaSuccess, what, ": ", cudaGetErrorString(e)); }

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    if (bytes) cuda_ok(cudaMalloc(&p, bytes), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (p) cudaFree(p);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

uint16_t to_act(float v, ActDType act) { return act == ActDType::BF16 ? f32_to_bf16(v) : f32_to_f16(v); }
float from_act(uint16_t v, ActDType act) { return act == ActDType::BF16 ? bf16_to_f32(v) : f16_to_f32(v); }

// ref[m, n] = sum_k x[m, k] W[n, k] + bias[n] in f64, threads over n.
std::vector<double> reference_gemm(const GptqWeight& w, const std::vector<double>& x, int64_t M,
                                   const std::vector<float>& bias) {
  const int64_t N = w.N, K = w.K;
  std::vector<double> ref(static_cast<size_t>(M * N));
  const int threads = static_cast<int>(std::max(1u, std::min(16u, std::thread::hardware_concurrency())));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::vector<double> wrow(static_cast<size_t>(K));
      for (int64_t n = t; n < N; n += threads) {
        for (int64_t k = 0; k < K; ++k) wrow[k] = w.weight(n, k);
        for (int64_t m = 0; m < M; ++m) {
          double s = bias.empty() ? 0.0 : bias[n];
          const double* xr = x.data() + m * K;
          for (int64_t k = 0; k < K; ++k) s += xr[k] * wrow[k];
          ref[m * N + n] = s;
        }
      }
    });
  for (auto& th : pool) th.join();
  return ref;
}

struct GemmCase {
  int64_t N, K, gs;
  bool sym, act_order;
};

// Runs every M on one weight; dtype and bias alternate with the M index (and the weight's seed) so that each M
// meets both dtypes and both bias settings over the cases.
void check_gemm_case(const GemmCase& c, const std::vector<int64_t>& Ms, uint32_t seed) {
  const GptqWeight w = random_weight(c.N, c.K, c.gs, c.sym, c.act_order, seed);
  std::string why;
  ASSERT_TRUE(w4a16_kernel_supports(w.view(), &why)) << why;
  const W4A16Repacked rp = repack_w4a16(w.view());
  const W4A16DeviceSizes sz = w4a16_device_sizes(rp);
  DeviceBuffer dq(sz.qweight), ds(sz.scales), dz(sz.zeros), dp(sz.perm);
  const W4A16DeviceWeights dw = w4a16_upload(rp, dq.p, ds.p, dz.p, dp.p, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "upload");
  std::mt19937 rng(seed * 7919u + 1);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (size_t mi = 0; mi < Ms.size(); ++mi) {
    const int64_t M = Ms[mi];
    const ActDType act = ((mi + seed) % 2 == 0) ? ActDType::BF16 : ActDType::F16;
    const bool with_bias = ((mi / 2 + seed) % 2) == 0;
    std::vector<uint16_t> xh(static_cast<size_t>(M * c.K));
    std::vector<double> xd(xh.size());
    for (size_t i = 0; i < xh.size(); ++i) {
      xh[i] = to_act(normal(rng), act);
      xd[i] = from_act(xh[i], act);
    }
    std::vector<float> bias;
    if (with_bias) {
      bias.resize(static_cast<size_t>(c.N));
      for (float& b : bias) b = normal(rng);
    }
    DeviceBuffer dx(xh.size() * 2), dy(static_cast<size_t>(M * c.N) * 2), db(bias.size() * 4);
    cuda_ok(cudaMemcpy(dx.p, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice), "x");
    if (with_bias) cuda_ok(cudaMemcpy(db.p, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice), "bias");
    const std::vector<double> ref = reference_gemm(w, xd, M, bias);
    // What w4a16_gemm picks (sized by the public w4a16_workspace_bytes), then each path forced.
    for (W4A16Path path : {W4A16Path::Auto, W4A16Path::Mma, W4A16Path::DequantBlas}) {
      const size_t ws_bytes =
          path == W4A16Path::Auto ? w4a16_workspace_bytes(M, dw) : w4a16_workspace_bytes_for(M, dw, path);
      DeviceBuffer dws(ws_bytes);
      if (ws_bytes) cuda_ok(cudaMemset(dws.p, 0xab, ws_bytes), "workspace garbage");  // needs no clearing
      std::vector<uint16_t> y1, y2;
      for (int rep = 0; rep < 2; ++rep) {
        cuda_ok(cudaMemset(dy.p, 0xff, static_cast<size_t>(M * c.N) * 2), "poison y");  // NaN in bf16 and f16
        w4a16_gemm_path(dw, dx.p, dy.p, M, act, with_bias ? static_cast<const float*>(db.p) : nullptr, dws.p,
                        ws_bytes, nullptr, path);
        cuda_ok(cudaDeviceSynchronize(), "w4a16_gemm");
        std::vector<uint16_t>& y = rep == 0 ? y1 : y2;
        y.resize(static_cast<size_t>(M * c.N));
        cuda_ok(cudaMemcpy(y.data(), dy.p, y.size() * 2, cudaMemcpyDeviceToHost), "y");
      }
      double err2 = 0, ref2 = 0;
      int64_t non_finite = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        const double v = from_act(y1[i], act);
        if (!std::isfinite(v)) ++non_finite;
        err2 += (v - ref[i]) * (v - ref[i]);
        ref2 += ref[i] * ref[i];
      }
      const double rel = std::sqrt(err2 / ref2), tol = act == ActDType::BF16 ? 5e-3 : 1e-3;
      const char* path_name = path == W4A16Path::Auto ? "auto" : path == W4A16Path::Mma ? "mma" : "dequant+blas";
      const std::string what = "N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) + " gs=" +
                               std::to_string(c.gs) + (c.sym ? " sym" : " asym") +
                               (c.act_order ? " act-order" : "") + " M=" + std::to_string(M) +
                               (act == ActDType::BF16 ? " bf16" : " f16") + (with_bias ? " bias " : " ") + path_name;
      std::printf("[w4a16] %-72s rel_err %.3e (tol %.0e)\n", what.c_str(), rel, tol);
      EXPECT_EQ(non_finite, 0) << what << ": unwritten or non-finite outputs";
      EXPECT_LE(rel, tol) << what;
      EXPECT_TRUE(y1 == y2) << what << ": two runs on the same inputs differ (a race?)";
    }
  }
}

const std::vector<int64_t> kAllM = {1, 2, 3, 7, 16, 33, 64, 65, 127, 257};

bool have_gpu() { return device_count() > 0; }

TEST(W4A16Gemm, SymmetricAndAsymmetricEveryGroupSize) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device on this machine";
  uint32_t seed = 100;
  for (int64_t gs : {32, 64, 128, 256, -1})
    for (bool sym : {true, false}) check_gemm_case({256, 512, gs, sym, false}, kAllM, seed++);
}

TEST(W4A16Gemm, ShapesThatAreNotMultiplesOfTheBigTiles) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device on this machine";
  // N = 192 (3 strips: a half-used 128-wide tile), K = 320 and 96 (partial last stage).
  check_gemm_case({192, 320, 32, false, false}, kAllM, 200);
  check_gemm_case({192, 320, -1, true, false}, kAllM, 201);
  check_gemm_case({576, 96, 32, true, false}, kAllM, 202);
  check_gemm_case({64, 2080, 64, false, false}, kAllM, 203);
}

TEST(W4A16Gemm, ActOrder) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device on this machine";
  check_gemm_case({256, 512, 128, true, true}, kAllM, 300);
  check_gemm_case({192, 1024, 32, false, true}, kAllM, 301);
  check_gemm_case({320, 384, 64, false, true}, kAllM, 302);
}

TEST(W4A16Gemm, RealLayerShapes) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device on this machine";
  check_gemm_case({4096, 4096, 128, true, false}, {1, 16, 64, 65, 257, 1024}, 400);
  check_gemm_case({4096, 4096, 128, false, true}, {2, 33, 127}, 401);
  check_gemm_case({768, 2048, 128, false, false}, kAllM, 402);
  check_gemm_case({2048, 768, -1, true, false}, kAllM, 403);
}

}  // namespace
}  // namespace omni::cuda
