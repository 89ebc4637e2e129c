// Repacking of a checkpoint's int4 weight (GPTQ words [K/8, N]) into the CPU layout of w4a16_matmul.h.
// Layout: outputs are cut into tiles of 64; a tile stores, for every word row r (inputs 8r..8r+7), the 64
// GPTQ words of its outputs side by side, so a kernel reads one tile as a single sequential stream and one
// 64-byte load gives 16 outputs × 8 inputs. Scales and zero points sit in small per-tile tables, one row per
// segment: a run of at most kW4MaxSegmentRows word rows inside one group. Act-order checkpoints (g_idx) are
// handled by ordering inputs by group here and gathering x in the same order at run time; groups are padded
// to multiples of 8 inputs with code 8 (and x = 0).
#include <algorithm>

#include "backends/cpu/w4a16_matmul.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

constexpr int64_t kTile = kW4TileOutputs;
constexpr uint32_t kPadWord = 0x88888888u;  // code 8 everywhere: (u − 8) = 0 for padded lanes

void validate(const GroupedIntWeight& w) {
  OMNI_CHECK(w.bits == 4, "W4A16 CPU matmul: ", w.bits, "-bit weights are not supported yet (expected bits = 4)");
  const int64_t K = w.in_features, N = w.out_features;
  OMNI_CHECK(K > 0 && N > 0, "W4A16 weight: in_features and out_features must be positive, found K = ", K,
             ", N = ", N);
  OMNI_CHECK(K % 8 == 0, "W4A16 weight: in_features must be a multiple of 8 for 4-bit packing, found ", K);
  OMNI_CHECK(w.group_size > 0, "W4A16 weight: group_size must be positive (K for per-channel), found ",
             w.group_size);
  const int64_t G = w.num_groups();
  auto check = [](const Tensor& t, const char* name, DType dt, const Shape& shape) {
    OMNI_CHECK(t.defined(), "W4A16 weight: ", name, " is missing");
    OMNI_CHECK(t.device() == Device::CPU, "W4A16 weight: ", name, " must be on the CPU");
    OMNI_CHECK(t.dtype() == dt && t.shape() == shape, "W4A16 weight: ", name, " expected ", dtype_name(dt), " ",
               shape_str(shape), ", found ", dtype_name(t.dtype()), " ", shape_str(t.shape()));
  };
  check(w.qweight, "qweight", DType::I32, {K / 8, N});
  check(w.scales, "scales", DType::F16, {G, N});
  check(w.zeros, "zeros", DType::U8, {G, N});
  if (w.g_idx.defined()) {
    check(w.g_idx, "g_idx", DType::I32, {K});
    const int32_t* gi = w.g_idx.data<int32_t>();
    for (int64_t k = 0; k < K; ++k)
      OMNI_CHECK(gi[k] >= 0 && gi[k] < G, "W4A16 weight: g_idx[", k, "] = ", gi[k], " is outside [0, ", G, ")");
  }
  const uint8_t* z = w.zeros.data<uint8_t>();
  for (int64_t i = 0; i < G * N; ++i)
    OMNI_CHECK(z[i] <= 15, "W4A16 weight: zero point ", int{z[i]}, " at index ", i, " is outside 0..15");
}

}  // namespace

W4A16CpuWeights pack_w4a16_cpu(const GroupedIntWeight& w) {
  validate(w);
  const int64_t K = w.in_features, N = w.out_features, G = w.num_groups();
  const int32_t* gi = w.g_idx.defined() ? w.g_idx.data<int32_t>() : nullptr;
  auto group_of = [&](int64_t k) -> int64_t { return gi ? gi[k] : k / w.group_size; };

  W4A16CpuWeights out;
  out.in_features = K;
  out.out_features = N;
  out.num_tiles = (N + kTile - 1) / kTile;

  // Order inputs by group (stable), then pad each group to a multiple of 8 so a word row never mixes groups.
  bool identity = true;
  for (int64_t k = 0; k < K && identity; ++k) identity = group_of(k) == k / w.group_size;
  identity = identity && w.group_size % 8 == 0;
  std::vector<int64_t> segment_group;  // group of each segment
  // A group of word rows [r0, r1) becomes segments of at most kW4MaxSegmentRows rows: large groups (and
  // per-channel scales) then still give the integer kernels short sums and fine activation scales.
  auto add_group = [&](int64_t g, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r += kW4MaxSegmentRows) {
      out.segment_rows.push_back(r);
      segment_group.push_back(g);
    }
  };
  if (identity) {
    out.padded_inputs = K;
    for (int64_t g = 0; g < G; ++g) add_group(g, g * w.group_size / 8, std::min(K, (g + 1) * w.group_size) / 8);
    out.segment_rows.push_back(K / 8);
  } else {
    std::vector<std::vector<int32_t>> members(static_cast<size_t>(G));
    for (int64_t k = 0; k < K; ++k) members[static_cast<size_t>(group_of(k))].push_back(static_cast<int32_t>(k));
    for (int64_t g = 0; g < G; ++g) {
      auto& mem = members[static_cast<size_t>(g)];
      if (mem.empty()) continue;
      const int64_t r0 = static_cast<int64_t>(out.input_of_position.size()) / 8;
      out.input_of_position.insert(out.input_of_position.end(), mem.begin(), mem.end());
      while (out.input_of_position.size() % 8 != 0) out.input_of_position.push_back(-1);
      add_group(g, r0, static_cast<int64_t>(out.input_of_position.size()) / 8);
    }
    out.padded_inputs = static_cast<int64_t>(out.input_of_position.size());
    out.segment_rows.push_back(out.padded_inputs / 8);
  }

  const int64_t rows = out.padded_inputs / 8, S = out.num_segments(), T = out.num_tiles;
  out.codes = Tensor::empty({T, rows, kTile}, DType::I32);
  out.scales = Tensor::empty({T, S, kTile}, DType::F16);
  out.zeros = Tensor::empty({T, S, kTile}, DType::U8);
  const uint32_t* qw = w.qweight.data<uint32_t>();
  const uint16_t* sc = w.scales.data<uint16_t>();
  const uint8_t* zp = w.zeros.data<uint8_t>();
  uint32_t* codes = out.codes.data<uint32_t>();
  uint16_t* scales = out.scales.data<uint16_t>();
  uint8_t* zeros = out.zeros.data<uint8_t>();

  auto code_of = [&](int64_t k, int64_t n) -> uint32_t { return (qw[(k / 8) * N + n] >> (4 * (k % 8))) & 0xfu; };
  parallel_for(0, T, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        uint32_t* dst = codes + (t * rows + r) * kTile;
        for (int64_t lane = 0; lane < kTile; ++lane) {
          const int64_t n = t * kTile + lane;
          if (n >= N) {
            dst[lane] = kPadWord;
          } else if (identity) {
            dst[lane] = qw[r * N + n];
          } else {
            uint32_t word = 0;
            for (int64_t j = 0; j < 8; ++j) {
              const int32_t k = out.input_of_position[static_cast<size_t>(8 * r + j)];
              word |= (k < 0 ? 8u : code_of(k, n)) << (4 * j);
            }
            dst[lane] = word;
          }
        }
      }
      for (int64_t s = 0; s < S; ++s)
        for (int64_t lane = 0; lane < kTile; ++lane) {
          const int64_t n = t * kTile + lane;
          const int64_t src = segment_group[static_cast<size_t>(s)] * N + n;
          scales[(t * S + s) * kTile + lane] = n < N ? sc[src] : uint16_t{0};
          zeros[(t * S + s) * kTile + lane] = n < N ? zp[src] : uint8_t{8};
        }
    }
  });
  out.symmetric = std::all_of(zeros, zeros + T * S * kTile, [](uint8_t z) { return z == 8; });
  return out;
}

}  // namespace omni
