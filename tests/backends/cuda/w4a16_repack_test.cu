// The CUDA W4A16 path: the repack against an independent packer written here from the layout described in
// w4a16_layout.h (bit for bit, runs without a GPU), and the GEMM against an F64 CPU product of the same rounded x
// with the exactly dequantised weight, on fresh random inputs, outputs poisoned with NaN first; and a host model of
// the decode kernel (w4a16_decode.cu) against the same reference, which runs without a GPU.
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
#include "backends/cuda/w4a16/w4a16_decode_math.h"
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
    // What w4a16_gemm picks (sized by the public w4a16_workspace_bytes), then each path forced; for the decode
    // kernel's M also its folded dequantisation (the default is q - z per weight pair).
    struct Variant {
      W4A16Path path;
      bool fold;
      const char* name;
    };
    std::vector<Variant> variants = {{W4A16Path::Auto, false, "auto"}, {W4A16Path::Mma, false, "mma"},
                                     {W4A16Path::DequantBlas, false, "dequant+blas"}};
    if (M <= kW4DecodeMaxM) variants.push_back({W4A16Path::Mma, true, "mma folded"});
    for (const Variant& var : variants) {
      const W4A16Path path = var.path;
      w4a16_set_decode_fold(var.fold);
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
      w4a16_set_decode_fold(false);  // the default
      const char* path_name = var.name;
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

// ---- The decode kernel's algorithm on the host (no GPU needed) -------------------------------------------------
// A step-for-step model of w4a16_decode.cu: the same work split, x staging, register dequantisation, flushes and
// reductions, through the helpers of w4a16_decode_math.h that the kernel uses; the instructions are modelled from
// the PTX ISA, written here independently of the kernel:
//   mma.sync m16n8k16 (g = lane / 4, t = lane % 4; the low 16 bits hold the first element of a pair):
//     A 16 x 16: a0 = (row g, cols 2t, 2t+1), a1 = (g + 8, 2t..), a2 = (g, 2t + 8..), a3 = (g + 8, 2t + 8..)
//     B 16 x 8:  b0 = (rows 2t, 2t+1, col g), b1 = (rows 2t + 8, 2t + 9, col g)
//     C 16 x 8:  c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g + 8, cols 2t, 2t+1)
//   prmt.b32 d, a, b, sel: byte i of d is byte (sel >> 4i) & 7 of the 8 bytes {b, a} (a = bytes 0..3).
// A wrong index anywhere (fragment order, staging, scale position, partial-sum element, the split of K over the
// cluster's warps, rounds) makes the model's result disagree with the F64 reference.
float half_of(uint32_t reg, int e, ActDType act) { return from_act(static_cast<uint16_t>(reg >> (16 * e)), act); }

void model_mma(float (&c)[32][4], const uint32_t (&a)[32][4], const uint32_t (&b)[32][2], ActDType act) {
  float A[16][16], B[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int e = 0; e < 2; ++e) {
      A[g][2 * t + e] = half_of(a[lane][0], e, act);
      A[g + 8][2 * t + e] = half_of(a[lane][1], e, act);
      A[g][2 * t + 8 + e] = half_of(a[lane][2], e, act);
      A[g + 8][2 * t + 8 + e] = half_of(a[lane][3], e, act);
      B[2 * t + e][g] = half_of(b[lane][0], e, act);
      B[2 * t + 8 + e][g] = half_of(b[lane][1], e, act);
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int e = 0; e < 4; ++e) {
      const int row = g + 8 * (e / 2), col = 2 * t + (e % 2);
      float v = c[lane][e];
      for (int k = 0; k < 16; ++k) v = std::fma(A[row][k], B[k][col], v);
      c[lane][e] = v;
    }
  }
}

uint32_t model_prmt(uint32_t a, uint32_t b, uint32_t sel) {
  const uint64_t bytes = (static_cast<uint64_t>(b) << 32) | a;
  uint32_t d = 0;
  for (int i = 0; i < 4; ++i) d |= static_cast<uint32_t>((bytes >> (8 * ((sel >> (4 * i)) & 7))) & 0xffu) << (8 * i);
  return d;
}

// Both halves of a - b in the activation type (exact for the magic + code values the kernel subtracts).
uint32_t model_sub2(uint32_t a, uint32_t b, ActDType act) {
  uint32_t d = 0;
  for (int e = 0; e < 2; ++e) d |= uint32_t{to_act(half_of(a, e, act) - half_of(b, e, act), act)} << (16 * e);
  return d;
}

// y (M x N, activation bits) as the decode kernel computes it with cs blocks per cluster and `clusters` clusters;
// x must already be in the weight's K order. Unwritten outputs stay NaN.
std::vector<uint16_t> model_decode(const W4A16Repacked& rp, const std::vector<uint16_t>& x, int64_t M, ActDType act,
                                   const std::vector<float>& bias, int cs, int clusters, bool fold) {
  using namespace w4dec;
  const int N = static_cast<int>(rp.out_features), K = static_cast<int>(rp.in_features);
  const int k_tiles = K / 16, strips = N / 64, nch = (K + kChunkInputs - 1) / kChunkInputs;
  const int NB = M <= 8 ? 1 : 2, gt = rp.group_size >= 128 ? 8 : 2, gpc = kChunkTiles / gt;
  int group_shift = 30;
  if (rp.group_size != K) {
    group_shift = 0;
    while ((int64_t{1} << group_shift) < rp.group_size) ++group_shift;
  }
  const bool bf16 = act == ActDType::BF16, asym = !rp.symmetric;
  const uint32_t magic = magic2(bf16);
  std::vector<uint16_t> y(static_cast<size_t>(M * N), 0x7fff);  // NaN in bf16 and f16
  const int block_tiles = (nch + cs - 1) / cs * kChunkTiles;

  // Shared memory of block `rank` (its K range, hence its x, is the same in every cluster).
  std::vector<std::vector<uint32_t>> xs(static_cast<size_t>(cs));
  std::vector<std::vector<float>> xsum(static_cast<size_t>(cs));
  for (int rank = 0; rank < cs; ++rank) {
    const Span bch = block_chunks(rank, cs, nch);
    const int bt0 = bch.begin * kChunkTiles, b_tiles = (bch.end - bch.begin) * kChunkTiles, per_row = b_tiles * 8;
    EXPECT_LE(b_tiles, block_tiles);
    xs[rank].assign(static_cast<size_t>(block_tiles) * 32 * NB * 2, 0xdeadbeefu);  // garbage where not staged
    xsum[rank].assign(static_cast<size_t>(block_tiles / 2) * 8 * NB, std::nanf(""));
    for (int i = 0; i < 8 * NB * per_row; ++i) {
      const XItem it = x_item(i, per_row, bt0, NB);
      uint32_t v = 0;
      if (it.row < M && it.k < K)
        v = uint32_t{x[static_cast<size_t>(it.row * K + it.k)]} |
            (uint32_t{x[static_cast<size_t>(it.row * K + it.k + 1)]} << 16);
      xs[rank][static_cast<size_t>(it.word)] = v;
    }
    if (fold)
      for (int u = 0; u < b_tiles / gt; ++u)
        for (int row = 0; row < 8 * NB; ++row) {
          float v = 0.f;
          for (int k = (bt0 + u * gt) * 16; row < M && k < (bt0 + u * gt + gt) * 16 && k < K; ++k)
            v += from_act(x[static_cast<size_t>(row * K + k)], act);
          xsum[rank][static_cast<size_t>(u * 8 * NB + row)] = v;
        }
  }

  struct LaneRegs {
    uint32_t qv[kChunkTiles][4] = {};
    uint32_t sv[4][4] = {};
    uint32_t zw[4] = {0x88888888u, 0x88888888u, 0x88888888u, 0x88888888u};
    float acc[4][2][4], tmp[4][2][4], xr[2][2];
    uint32_t z2[8];
  };
  for (int cid = 0; cid < clusters; ++cid) {
    const int rounds = cluster_rounds(cid, strips, clusters);
    std::vector<std::vector<LaneRegs>> regs(static_cast<size_t>(cs * kWarps), std::vector<LaneRegs>(32));
    std::vector<float> bsum(static_cast<size_t>(cs) * 2 * 512 * NB, std::nanf(""));
    auto load_chunk = [&](LaneRegs& R, int lane, int s, int c, int p) {
      for (int w = 0; w < 4; ++w)
        R.qv[p][w] = rp.qweight[weight_index(s, c, p, lane, k_tiles) * 4 + static_cast<size_t>(w)];
    };
    auto load_sv = [&](LaneRegs& R, int lane, int s, int c, int i) {
      const int k = flush_k0(c, i, gt);
      for (int w = 0; w < 4; ++w) R.sv[i][w] = 0;
      if (k < K) {
        const size_t off = scale_offset(k >> group_shift, N, s, lane / 4);
        for (int w = 0; w < 4; ++w)
          R.sv[i][w] = uint32_t{rp.scales[off + 2 * w]} | (uint32_t{rp.scales[off + 2 * w + 1]} << 16);
      }
    };
    auto load_zw = [&](LaneRegs& R, int lane, int s, int c, int i) {
      const int k = flush_k0(c, i, gt);
      R.zw[i] = k < K ? rp.zeros[zero_offset(k >> group_shift, N, s, lane / 4)] : 0x88888888u;
    };
    // Prologue: the first chunk of every warp.
    for (int rank = 0; rank < cs; ++rank)
      for (int warp = 0; warp < kWarps; ++warp) {
        const Span wch = warp_chunks(rank, warp, cs, nch);
        if (rounds * (wch.end - wch.begin) == 0) continue;
        for (int lane = 0; lane < 32; ++lane) {
          LaneRegs& R = regs[static_cast<size_t>(rank * kWarps + warp)][static_cast<size_t>(lane)];
          const int nvalid = std::min(kChunkTiles, k_tiles - wch.begin * kChunkTiles);
          for (int p = 0; p < nvalid; ++p) load_chunk(R, lane, cid, wch.begin, p);
          for (int i = 0; i < gpc; ++i) {
            load_sv(R, lane, cid, wch.begin, i);
            if (asym) load_zw(R, lane, cid, wch.begin, i);
          }
          for (int i = 0; i < 8; ++i) R.z2[i] = magic_plus_8(bf16);
        }
      }
    for (int r = 0; r < rounds; ++r) {
      const int strip = cid + r * clusters;
      std::vector<float> red(static_cast<size_t>(cs) * kWarps * 512 * NB, std::nanf(""));
      for (int rank = 0; rank < cs; ++rank) {
        const int bt0 = block_chunks(rank, cs, nch).begin * kChunkTiles;
        for (int warp = 0; warp < kWarps; ++warp) {
          std::vector<LaneRegs>& L = regs[static_cast<size_t>(rank * kWarps + warp)];
          const Span ch = warp_chunks(rank, warp, cs, nch);
          const int tc = ch.end - ch.begin, total = rounds * tc;
          int f = r * tc;
          for (LaneRegs& R : L) {
            for (int j = 0; j < 4; ++j)
              for (int nb = 0; nb < NB; ++nb)
                for (int e = 0; e < 4; ++e) R.acc[j][nb][e] = R.tmp[j][nb][e] = 0.f;
            for (int nb = 0; nb < NB; ++nb) R.xr[nb][0] = R.xr[nb][1] = 0.f;
          }
          for (int cc = 0; cc < tc; ++cc, ++f) {
            const int c = ch.begin + cc;
            const bool has_next = f + 1 < total;
            const int ns = cc + 1 < tc ? strip : strip + clusters, nc = cc + 1 < tc ? c + 1 : ch.begin;
            const int nvalid = has_next ? std::min(kChunkTiles, k_tiles - nc * kChunkTiles) : 0;
            const bool flush8 = chunk_closes_group(c, cc + 1 == tc, group_shift);
            const int u0 = c * kChunkTiles - bt0;
            for (int i = 0; i < gpc; ++i) {
              for (int lane = 0; lane < 32; ++lane) {
                LaneRegs& R = L[static_cast<size_t>(lane)];
                if (asym && !fold) {
                  const uint32_t even = R.zw[i] & 0x0f0f0f0fu, odd = (R.zw[i] >> 4) & 0x0f0f0f0fu;
                  for (int j = 0; j < 4; ++j) {
                    R.z2[2 * j] = model_prmt(even, magic_bytes(bf16), dup_byte_selector(j));
                    R.z2[2 * j + 1] = model_prmt(odd, magic_bytes(bf16), dup_byte_selector(j));
                  }
                  if (has_next) load_zw(R, lane, ns, nc, i);
                }
                if (fold) {
                  const float* xsu = xsum[rank].data() + ((u0 / gt) + i) * 8 * NB + 2 * (lane & 3);
                  for (int nb = 0; nb < NB; ++nb) {
                    R.xr[nb][0] += xsu[nb * 8];
                    R.xr[nb][1] += xsu[nb * 8 + 1];
                  }
                }
              }
              for (int pp = 0; pp < gt; ++pp) {
                const int p = i * gt + pp;
                uint32_t b[2][32][2];
                for (int lane = 0; lane < 32; ++lane)
                  for (int nb = 0; nb < NB; ++nb)
                    for (int reg = 0; reg < 2; ++reg)
                      b[nb][lane][reg] = xs[rank][static_cast<size_t>(x_word(u0 + p, lane, nb, reg, NB))];
                for (int j = 0; j < 4; ++j) {
                  uint32_t af[32][4];
                  for (int lane = 0; lane < 32; ++lane)
                    for (int rr = 0; rr < 4; ++rr) {
                      const LaneRegs& R = L[static_cast<size_t>(lane)];
                      af[lane][rr] = mask_magic(R.qv[p][j] >> a_shift(rr), magic);
                      if (!fold) af[lane][rr] = model_sub2(af[lane][rr], R.z2[a_position(j, rr)], act);
                    }
                  for (int nb = 0; nb < NB; ++nb) {
                    float cfr[32][4];
                    for (int lane = 0; lane < 32; ++lane)
                      for (int e = 0; e < 4; ++e) cfr[lane][e] = L[static_cast<size_t>(lane)].tmp[j][nb][e];
                    model_mma(cfr, af, b[nb], act);
                    for (int lane = 0; lane < 32; ++lane)
                      for (int e = 0; e < 4; ++e) L[static_cast<size_t>(lane)].tmp[j][nb][e] = cfr[lane][e];
                  }
                }
                if (p < nvalid)
                  for (int lane = 0; lane < 32; ++lane) load_chunk(L[static_cast<size_t>(lane)], lane, ns, nc, p);
              }
              if (gt != 8 || flush8) {
                for (int lane = 0; lane < 32; ++lane) {
                  LaneRegs& R = L[static_cast<size_t>(lane)];
                  for (int j = 0; j < 4; ++j) {
                    const float lo = f16_to_f32(scale_bits_at(R.sv[i], 2 * j));
                    const float hi = f16_to_f32(scale_bits_at(R.sv[i], 2 * j + 1));
                    const float zlo = magic_value(bf16) + static_cast<float>(zero_at(R.zw[i], 2 * j));
                    const float zhi = magic_value(bf16) + static_cast<float>(zero_at(R.zw[i], 2 * j + 1));
                    for (int nb = 0; nb < NB; ++nb)
                      for (int e = 0; e < 4; ++e)
                        R.acc[j][nb][e] = fold ? flush_folded(R.acc[j][nb][e], e < 2 ? lo : hi, e < 2 ? zlo : zhi,
                                                              R.xr[nb][e % 2], R.tmp[j][nb][e])
                                               : flush_plain(R.acc[j][nb][e], e < 2 ? lo : hi, R.tmp[j][nb][e]);
                  }
                  for (int j = 0; j < 4; ++j)
                    for (int nb = 0; nb < NB; ++nb)
                      for (int e = 0; e < 4; ++e) R.tmp[j][nb][e] = 0.f;
                  for (int nb = 0; nb < NB; ++nb) R.xr[nb][0] = R.xr[nb][1] = 0.f;
                  if (has_next) {
                    load_sv(R, lane, ns, nc, i);
                    if (asym && fold) load_zw(R, lane, ns, nc, i);
                  }
                }
              }
            }
          }
          for (int lane = 0; lane < 32; ++lane)
            for (int j = 0; j < 4; ++j)
              for (int nb = 0; nb < NB; ++nb)
                for (int e = 0; e < 4; ++e)
                  red[static_cast<size_t>((rank * kWarps + warp) * 512 * NB + acc_index(j, nb, e, lane, NB))] =
                      L[static_cast<size_t>(lane)].acc[j][nb][e];
        }
        for (int idx = 0; idx < 512 * NB; ++idx)
          if (acc_row(idx, NB) < M) {
            float v = 0.f;
            for (int w = 0; w < kWarps; ++w) v += red[static_cast<size_t>((rank * kWarps + w) * 512 * NB + idx)];
            bsum[static_cast<size_t>((rank * 2 + (r & 1)) * 512 * NB + idx)] = v;
          }
      }
      for (int e2 = 0; e2 < std::min<int>(static_cast<int>(M), 8 * NB) * 64; ++e2) {
        const int row = e2 >> 6, col = e2 & 63, idx = acc_index_of(row, col, NB);
        float v = 0.f;
        for (int rk = 0; rk < cs; ++rk) v += bsum[static_cast<size_t>((rk * 2 + (r & 1)) * 512 * NB + idx)];
        const int n = strip * 64 + col;
        if (!bias.empty()) v += bias[static_cast<size_t>(n)];
        y[static_cast<size_t>(row * N + n)] = to_act(v, act);
      }
    }
  }
  return y;
}

TEST(W4A16DecodeModel, MatchesTheReferenceForEverySplit) {
  struct Case {
    int64_t N, K, gs;
    bool sym, act_order;
  };
  const Case cases[] = {{256, 512, 32, false, false},  {256, 512, 64, true, false},   {256, 512, 128, false, false},
                        {256, 512, 256, true, false},  {256, 512, -1, false, false},  {192, 320, 32, false, false},
                        {192, 320, -1, true, false},   {576, 96, 32, true, false},    {64, 2080, 64, false, false},
                        {1280, 1024, 256, false, false}, {320, 384, 64, false, true}, {128, 1152, 128, true, true}};
  uint32_t seed = 700;
  int runs = 0;
  for (const Case& cs_case : cases) {
    const GptqWeight w = random_weight(cs_case.N, cs_case.K, cs_case.gs, cs_case.sym, cs_case.act_order, seed);
    const W4A16Repacked rp = repack_w4a16(w.view());
    const int strips = static_cast<int>(cs_case.N / 64);
    std::mt19937 rng(seed++ * 31u);
    std::normal_distribution<float> normal(0.f, 1.f);
    int variant = 0;
    for (int64_t M : {1, 3, 8, 9, 16}) {
      const ActDType act = (variant % 2 == 0) ? ActDType::BF16 : ActDType::F16;
      std::vector<uint16_t> xh(static_cast<size_t>(M * cs_case.K)), xk(xh.size());
      std::vector<double> xd(xh.size());
      for (size_t i = 0; i < xh.size(); ++i) {
        xh[i] = to_act(normal(rng), act);
        xd[i] = from_act(xh[i], act);
      }
      // The kernel reads x in the weight's K order (the GEMM gathers it first for act-order).
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < cs_case.K; ++k)
          xk[static_cast<size_t>(m * cs_case.K + k)] =
              xh[static_cast<size_t>(m * cs_case.K + (rp.perm.empty() ? k : rp.perm[static_cast<size_t>(k)]))];
      std::vector<float> bias;
      if (variant % 3 == 1) {
        bias.resize(static_cast<size_t>(cs_case.N));
        for (float& b : bias) b = normal(rng);
      }
      const std::vector<double> ref = reference_gemm(w, xd, M, bias);
      const int splits[][2] = {{1, strips}, {3, std::max(1, strips / 3)}, {8, strips}, {2, 1},
                               {5, std::max(1, (strips + 1) / 2)}};
      const int pick = variant % 5;
      for (int k = 0; k < 2; ++k) {
        const int cs = splits[(pick + k) % 5][0], clusters = splits[(pick + k) % 5][1];
        for (bool fold : {true, false}) {
          const std::vector<uint16_t> y = model_decode(rp, xk, M, act, bias, cs, clusters, fold);
          double err2 = 0, ref2 = 0;
          int64_t non_finite = 0;
          for (size_t i = 0; i < ref.size(); ++i) {
            const double v = from_act(y[i], act);
            if (!std::isfinite(v)) ++non_finite;
            err2 += (v - ref[i]) * (v - ref[i]);
            ref2 += ref[i] * ref[i];
          }
          const double rel = std::sqrt(err2 / ref2), tol = act == ActDType::BF16 ? 5e-3 : 1e-3;
          const std::string what = "model N=" + std::to_string(cs_case.N) + " K=" + std::to_string(cs_case.K) +
                                   " gs=" + std::to_string(cs_case.gs) + (cs_case.sym ? " sym" : " asym") +
                                   (cs_case.act_order ? " act-order" : "") + " M=" + std::to_string(M) +
                                   (act == ActDType::BF16 ? " bf16" : " f16") + " cs=" + std::to_string(cs) +
                                   " clusters=" + std::to_string(clusters) + (fold ? " folded" : " unfolded");
          std::printf("[w4a16] %-90s rel_err %.3e (tol %.0e)\n", what.c_str(), rel, tol);
          EXPECT_EQ(non_finite, 0) << what << ": unwritten or non-finite outputs";
          EXPECT_LE(rel, tol) << what;
          ++runs;
        }
      }
      ++variant;
    }
  }
  EXPECT_EQ(runs, 12 * 5 * 2 * 2);
}

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

TEST(W4A16Gemm, DecodeKernelRoundsAndClusters) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device on this machine";
  // More strips than clusters fit at once (several rounds per cluster), several chunks per warp with a group of
  // 256 (a scale flush every other chunk), one chunk for the whole K (7 of 8 warps idle), per channel.
  check_gemm_case({12800, 8192, 256, false, false}, {1, 5, 9, 16}, 500);
  check_gemm_case({38400, 128, 32, true, false}, {1, 9}, 501);
  check_gemm_case({25600, 256, 64, false, false}, {3, 12}, 502);
  check_gemm_case({4096, 4096, -1, false, false}, {1, 16}, 503);
  check_gemm_case({1024, 12288, 128, true, false}, {2, 16}, 504);
}

// Programmatic dependent launch: the decode kernel reads x only after griddepcontrol.wait. A chain on one stream,
// y1 = x W^T, y2 = y1 W^T (K = N), with y1 poisoned before each pair, must give the same y2 with PDL on and off.
TEST(W4A16Gemm, DecodeKernelChainedOnAStreamWithPdl) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t N = 2048;
  const GptqWeight w = random_weight(N, N, 128, false, false, 600);
  const W4A16Repacked rp = repack_w4a16(w.view());
  const W4A16DeviceSizes sz = w4a16_device_sizes(rp);
  DeviceBuffer dq(sz.qweight), ds(sz.scales), dz(sz.zeros), dp(sz.perm);
  cudaStream_t stream;
  cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  const W4A16DeviceWeights dw = w4a16_upload(rp, dq.p, ds.p, dz.p, dp.p, stream);
  std::mt19937 rng(601);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int64_t M : {1, 7, 16}) {
    std::vector<uint16_t> xh(static_cast<size_t>(M * N));
    for (uint16_t& v : xh) v = f32_to_bf16(normal(rng));
    DeviceBuffer dx(xh.size() * 2), dy1(xh.size() * 2), dy2(xh.size() * 2);
    cuda_ok(cudaMemcpy(dx.p, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice), "x");
    std::vector<uint16_t> out[2];
    for (int pdl = 0; pdl < 2; ++pdl) {
      w4a16_set_pdl(pdl == 1);
      for (int rep = 0; rep < 3; ++rep) {
        cuda_ok(cudaMemsetAsync(dy1.p, 0xff, xh.size() * 2, stream), "poison y1");
        // The decode kernel itself (W4A16Path::Mma takes it up to kW4DecodeMaxM; Auto only to M = 8): no workspace.
        w4a16_gemm_path(dw, dx.p, dy1.p, M, ActDType::BF16, nullptr, nullptr, 0, stream, W4A16Path::Mma);
        w4a16_gemm_path(dw, dy1.p, dy2.p, M, ActDType::BF16, nullptr, nullptr, 0, stream, W4A16Path::Mma);
      }
      out[pdl].resize(xh.size());
      cuda_ok(cudaMemcpyAsync(out[pdl].data(), dy2.p, xh.size() * 2, cudaMemcpyDeviceToHost, stream), "y2");
      cuda_ok(cudaStreamSynchronize(stream), "sync");
    }
    w4a16_set_pdl(true);
    int64_t non_finite = 0;
    for (uint16_t v : out[1]) non_finite += std::isfinite(bf16_to_f32(v)) ? 0 : 1;
    EXPECT_EQ(non_finite, 0) << "M=" << M;
    EXPECT_TRUE(out[0] == out[1]) << "M=" << M << ": the chained result differs with PDL";
  }
  cuda_ok(cudaStreamDestroy(stream), "stream");
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
