#include "backends/cpu/w4a16_matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "backends/cpu/cpu_test_util.h"
#include "core/half.h"

namespace omni {
namespace {

// A quantised layer described by its unpacked parts, plus an independent packer following AUTOROUND.md §5:
// word [r, n] of qweight holds the codes of inputs 8r..8r+7 of output n, input 8r+j in bits 4j..4j+3.
struct Unpacked {
  int64_t K = 0, N = 0, group = 0, G = 0;
  std::vector<uint8_t> codes;     // u[k, n] in 0..15, [K, N]
  std::vector<uint16_t> scales;   // f16 [G, N]
  std::vector<uint8_t> zeros;     // [G, N]
  std::vector<int32_t> g_idx;     // [K] or empty

  int64_t group_of(int64_t k) const { return g_idx.empty() ? k / group : g_idx[static_cast<size_t>(k)]; }

  double weight(int64_t n, int64_t k) const {
    const int64_t g = group_of(k);
    const double s = f16_to_f32(scales[static_cast<size_t>(g * N + n)]);
    return s * (static_cast<double>(codes[static_cast<size_t>(k * N + n)]) - zeros[static_cast<size_t>(g * N + n)]);
  }

  GroupedIntWeight pack() const {
    GroupedIntWeight w;
    w.bits = 4;
    w.in_features = K;
    w.out_features = N;
    w.group_size = group;
    w.qweight = Tensor::empty({K / 8, N}, DType::I32);
    uint32_t* qw = w.qweight.data<uint32_t>();
    for (int64_t r = 0; r < K / 8; ++r)
      for (int64_t n = 0; n < N; ++n) {
        uint32_t word = 0;
        for (int64_t j = 0; j < 8; ++j) word |= uint32_t{codes[static_cast<size_t>((8 * r + j) * N + n)]} << (4 * j);
        qw[r * N + n] = word;
      }
    w.scales = Tensor::empty({G, N}, DType::F16);
    std::copy(scales.begin(), scales.end(), w.scales.data<uint16_t>());
    w.zeros = Tensor::empty({G, N}, DType::U8);
    std::copy(zeros.begin(), zeros.end(), w.zeros.data<uint8_t>());
    if (!g_idx.empty()) w.g_idx = Tensor::from_i32(g_idx, {K});
    return w;
  }
};

enum class Zeros { Symmetric, Random };
enum class Order { InOrder, ActOrder, Uneven };

Unpacked make_layer(int64_t K, int64_t N, int64_t group, Zeros zeros, Order order, uint32_t seed) {
  Unpacked u;
  u.K = K;
  u.N = N;
  u.group = group;
  u.G = (K + group - 1) / group;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(0, 15);
  u.codes.resize(static_cast<size_t>(K * N));
  for (auto& c : u.codes) c = static_cast<uint8_t>(code(rng));
  const auto s = test::random_floats(static_cast<size_t>(u.G * N), seed + 7, 0.05f);  // includes negatives
  for (float v : s) u.scales.push_back(f32_to_f16(v));
  u.zeros.resize(static_cast<size_t>(u.G * N), 8);
  if (zeros == Zeros::Random)
    for (auto& z : u.zeros) z = static_cast<uint8_t>(code(rng));
  if (order == Order::ActOrder) {  // every group keeps `group` members, scattered over K
    u.g_idx.resize(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) u.g_idx[static_cast<size_t>(k)] = static_cast<int32_t>(k / group);
    std::shuffle(u.g_idx.begin(), u.g_idx.end(), rng);
  } else if (order == Order::Uneven) {  // arbitrary assignment: group sizes not multiples of 8
    std::uniform_int_distribution<int32_t> g(0, static_cast<int32_t>(u.G - 1));
    u.g_idx.resize(static_cast<size_t>(K));
    for (auto& v : u.g_idx) v = g(rng);
  }
  return u;
}

std::vector<double> reference(const Unpacked& u, const std::vector<float>& x, const std::vector<float>& bias,
                              int64_t M) {
  std::vector<double> y(static_cast<size_t>(M * u.N));
  for (int64_t n = 0; n < u.N; ++n) {
    std::vector<double> wcol(static_cast<size_t>(u.K));
    for (int64_t k = 0; k < u.K; ++k) wcol[static_cast<size_t>(k)] = u.weight(n, k);
    for (int64_t m = 0; m < M; ++m) {
      double s = bias.empty() ? 0.0 : bias[static_cast<size_t>(n)];
      for (int64_t k = 0; k < u.K; ++k) s += x[static_cast<size_t>(m * u.K + k)] * wcol[static_cast<size_t>(k)];
      y[static_cast<size_t>(m * u.N + n)] = s;
    }
  }
  return y;
}

// The integer kernels' error bound for output n of row m: each segment's x is rounded to multiples of
// s_x = max|x| / 32767, so |Δy| ≤ Σ_seg s_x / 2 · Σ_{k∈seg} |W[n, k]|; plus f32 summation slack.
std::vector<double> int16_error_bound(const Unpacked& u, const W4A16CpuWeights& p, const std::vector<float>& x,
                                      int64_t M) {
  auto input_at = [&](int64_t pos) -> int64_t {
    return p.input_of_position.empty() ? pos : p.input_of_position[static_cast<size_t>(pos)];
  };
  std::vector<double> bound(static_cast<size_t>(M * u.N), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t s = 0; s < p.num_segments(); ++s) {
      const int64_t p0 = 8 * p.segment_rows[static_cast<size_t>(s)], p1 = 8 * p.segment_rows[static_cast<size_t>(s) + 1];
      double amax = 0.0;
      for (int64_t pos = p0; pos < p1; ++pos)
        if (input_at(pos) >= 0) amax = std::max(amax, std::fabs(double{x[static_cast<size_t>(m * u.K + input_at(pos))]}));
      for (int64_t n = 0; n < u.N; ++n) {
        double wsum = 0.0, xwsum = 0.0;
        for (int64_t pos = p0; pos < p1; ++pos) {
          const int64_t k = input_at(pos);
          if (k < 0) continue;
          wsum += std::fabs(u.weight(n, k));
          xwsum += std::fabs(u.weight(n, k) * x[static_cast<size_t>(m * u.K + k)]);
        }
        bound[static_cast<size_t>(m * u.N + n)] += amax / 32767.0 / 2.0 * wsum + 1e-6 * xwsum;
      }
    }
  return bound;
}

void check_layer(const Unpacked& u, int64_t M, bool with_bias, uint32_t seed) {
  const W4A16CpuWeights packed = pack_w4a16_cpu(u.pack());
  const auto x = test::random_floats(static_cast<size_t>(M * u.K), seed);
  const auto bias = with_bias ? test::random_floats(static_cast<size_t>(u.N), seed + 1) : std::vector<float>{};
  const auto ref = reference(u, x, bias, M);
  auto run = [&] {
    std::vector<float> y(static_cast<size_t>(M * u.N), std::numeric_limits<float>::quiet_NaN());
    w4a16_matmul(y.data(), x.data(), packed, with_bias ? bias.data() : nullptr, M);
    return y;
  };
  {
    SCOPED_TRACE("f32 activations");
    set_w4a16_cpu_activations(W4A16Activations::F32);
    test::for_each_cpu_isa([&] {
      const auto y = run();
      ASSERT_TRUE(test::all_finite(y.data(), y.size()));
      EXPECT_LT(test::relative_error(y.data(), ref), 5e-6);
    });
  }
  {
    SCOPED_TRACE("16-bit integer activations");
    set_w4a16_cpu_activations(W4A16Activations::Int16);
    const auto bound = int16_error_bound(u, packed, x, M);
    std::vector<std::vector<float>> per_isa;
    test::for_each_cpu_isa([&] {
      const auto y = run();
      ASSERT_TRUE(test::all_finite(y.data(), y.size()));
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_LE(std::fabs(y[i] - ref[i]), bound[i]) << "output " << i << " of " << y.size();
      per_isa.push_back(y);
    });
    // The integer sums are exact and every path applies the scales in the same order: bit-identical results.
    for (size_t i = 1; i < per_isa.size(); ++i)
      EXPECT_EQ(per_isa[i], per_isa[0]) << "path " << i << " differs from the scalar path";
  }
}

TEST(W4A16MatmulTest, GroupSizesShapesAndZeroPoints) {
  struct Case {
    int64_t M, K, N, group;
    Zeros zeros;
    bool bias;
  };
  const Case cases[] = {
      {1, 128, 64, 32, Zeros::Symmetric, false}, {1, 256, 70, 128, Zeros::Random, true},
      {3, 192, 129, 64, Zeros::Random, false},   {8, 96, 200, 32, Zeros::Symmetric, true},
      {5, 136, 17, 136, Zeros::Random, false},   // group = K (per channel), K not a power of two
      {2, 512, 33, 128, Zeros::Symmetric, true}, {257, 64, 65, 32, Zeros::Random, true},
      {64, 128, 128, 128, Zeros::Random, false},
      // Decode (M = 1) runs tiles of 64 outputs in pairs: odd tile counts leave one tile for the single path.
      {1, 256, 150, 64, Zeros::Random, true},    {1, 128, 300, 128, Zeros::Symmetric, false},
      // Per-channel over a long K: the packer cuts the group into segments of 16 word rows.
      {1, 2048, 96, 2048, Zeros::Random, false}, {7, 1024, 64, 1024, Zeros::Symmetric, true},
      {8, 384, 80, 128, Zeros::Random, true},    // the smallest batch that takes the prefill GEMM
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "M=" << c.M << " K=" << c.K << " N=" << c.N << " group=" << c.group
                                    << (c.zeros == Zeros::Random ? " random zeros" : " zero 8"));
    check_layer(make_layer(c.K, c.N, c.group, c.zeros, Order::InOrder, seed), c.M, c.bias, seed + 100);
    seed += 2;
  }
}

TEST(W4A16MatmulTest, ActOrderGIdx) {
  for (Order order : {Order::ActOrder, Order::Uneven}) {
    for (Zeros zeros : {Zeros::Symmetric, Zeros::Random}) {
      SCOPED_TRACE(testing::Message() << (order == Order::ActOrder ? "act-order" : "uneven groups"));
      const Unpacked u = make_layer(256, 100, 64, zeros, order, 77);
      check_layer(u, 1, true, 5);
      check_layer(u, 6, false, 6);
    }
  }
}

TEST(W4A16MatmulTest, SegmentsNeverExceedSixteenWordRows) {
  const W4A16CpuWeights p = pack_w4a16_cpu(make_layer(1000, 8, 1000, Zeros::Random, Order::InOrder, 4).pack());
  ASSERT_EQ(p.segment_rows.front(), 0);
  ASSERT_EQ(p.segment_rows.back(), 125);
  for (int64_t s = 0; s < p.num_segments(); ++s) {
    const int64_t rows = p.segment_rows[static_cast<size_t>(s) + 1] - p.segment_rows[static_cast<size_t>(s)];
    EXPECT_GT(rows, 0);
    EXPECT_LE(rows, kW4MaxSegmentRows);
  }
}

TEST(W4A16MatmulTest, NonFiniteInputGivesNonFiniteOutputInBothModes) {
  const Unpacked u = make_layer(256, 64, 128, Zeros::Random, Order::InOrder, 12);
  const W4A16CpuWeights p = pack_w4a16_cpu(u.pack());
  for (auto mode : {W4A16Activations::F32, W4A16Activations::Int16}) {
    set_w4a16_cpu_activations(mode);
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      auto x = test::random_floats(256, 13);
      x[200] = bad;  // in the second segment only
      std::vector<float> y(64, 0.0f);
      w4a16_matmul(y.data(), x.data(), p, nullptr, 1);
      for (float v : y) EXPECT_FALSE(std::isfinite(v)) << "input " << bad;
    }
  }
  set_w4a16_cpu_activations(W4A16Activations::Int16);
}

TEST(W4A16MatmulTest, RepackIsAPurePermutationOfCodes) {
  const Unpacked u = make_layer(64, 80, 32, Zeros::Random, Order::InOrder, 3);
  const W4A16CpuWeights p = pack_w4a16_cpu(u.pack());
  ASSERT_EQ(p.num_tiles, 2);
  ASSERT_EQ(p.padded_inputs, 64);
  const uint32_t* codes = p.codes.data<uint32_t>();
  for (int64_t t = 0; t < p.num_tiles; ++t)
    for (int64_t r = 0; r < 8; ++r)
      for (int64_t lane = 0; lane < kW4TileOutputs; ++lane) {
        const int64_t n = t * kW4TileOutputs + lane;
        const uint32_t word = codes[(t * 8 + r) * kW4TileOutputs + lane];
        for (int64_t j = 0; j < 8; ++j) {
          const uint32_t expect = n < u.N ? u.codes[static_cast<size_t>((8 * r + j) * u.N + n)] : 8u;
          ASSERT_EQ((word >> (4 * j)) & 0xfu, expect) << "tile " << t << " row " << r << " lane " << lane;
        }
      }
  EXPECT_FALSE(p.symmetric);
}

TEST(W4A16MatmulTest, RejectsWhatItCannotRun) {
  const Unpacked u = make_layer(64, 16, 32, Zeros::Symmetric, Order::InOrder, 9);
  GroupedIntWeight w = u.pack();
  w.bits = 3;
  try {
    pack_w4a16_cpu(w);
    FAIL() << "3-bit weights were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not supported yet"), std::string::npos) << e.what();
  }
  w = u.pack();
  w.scales = Tensor::empty({3, 16}, DType::F16);
  try {
    pack_w4a16_cpu(w);
    FAIL() << "wrong scales shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scales expected F16 [2, 16], found F16 [3, 16]"), std::string::npos)
        << e.what();
  }
  w = u.pack();
  w.g_idx = Tensor::from_i32(std::vector<int32_t>(64, 2), {64});
  EXPECT_THROW(pack_w4a16_cpu(w), Error);  // group 2 does not exist
}

}  // namespace
}  // namespace omni
