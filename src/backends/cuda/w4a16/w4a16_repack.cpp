#include "backends/cuda/w4a16/w4a16_repack.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace omni::cuda {
namespace {

// Empty when the weight is supported, otherwise the reason.
std::string unsupported_reason(const W4A16SourceView& w) {
  if (w.bits != 4) return str_cat("bits = ", w.bits, " (the kernel takes 4-bit codes only)");
  const int64_t K = w.in_features, N = w.out_features, gs = w.group_size;
  if (K <= 0 || N <= 0) return str_cat("empty shape K = ", K, ", N = ", N);
  if (N % kW4StripN != 0) return str_cat("out_features N = ", N, " is not a multiple of ", kW4StripN);
  if (K % kW4GroupQuantum != 0) return str_cat("in_features K = ", K, " is not a multiple of ", kW4GroupQuantum);
  // The kernel indexes a block's weights with 32-bit offsets.
  if (K > (int64_t{1} << 24) || N > (int64_t{1} << 24)) return str_cat("shape K = ", K, ", N = ", N, " too large");
  // Powers of two let the kernel find a group with a shift; GPTQ/AutoRound use 32, 64, 128 or per channel.
  const bool pow2 = gs >= kW4GroupQuantum && (gs & (gs - 1)) == 0;
  if (gs <= 0 || gs > K || (gs != K && !pow2))
    return str_cat("group_size = ", gs, " (supported: powers of two from ", kW4GroupQuantum, " up to K, or K)");
  if (!w.qweight || !w.scales || !w.zeros) return "qweight, scales or zeros is missing";
  const int64_t G = w.num_groups();
  for (int64_t i = 0; i < G * N; ++i)
    if (w.zeros[i] > 15) return str_cat("zero point ", int{w.zeros[i]}, " at index ", i, " is outside 0..15");
  if (w.g_idx) {
    std::vector<int64_t> count(static_cast<size_t>(G), 0);
    for (int64_t k = 0; k < K; ++k) {
      if (w.g_idx[k] < 0 || w.g_idx[k] >= G) return str_cat("g_idx[", k, "] = ", w.g_idx[k], " is outside [0, ", G, ")");
      ++count[static_cast<size_t>(w.g_idx[k])];
    }
    // After the sort by group, group g must cover exactly the inputs [g*gs, (g+1)*gs).
    for (int64_t g = 0; g < G; ++g) {
      const int64_t want = std::min(gs, K - g * gs);
      if (count[static_cast<size_t>(g)] != want)
        return str_cat("act-order group ", g, " has ", count[static_cast<size_t>(g)], " inputs, the kernel needs ",
                       want, " (equal-size groups)");
    }
  }
  return {};
}

std::string tensor_reason(const GroupedIntWeight& w) {
  const int64_t K = w.in_features, N = w.out_features;
  if (w.bits != 4) return str_cat("bits = ", w.bits, " (the kernel takes 4-bit codes only)");
  if (K <= 0 || N <= 0 || K % 8 != 0) return str_cat("shape K = ", K, ", N = ", N, " (K must be a positive multiple of 8)");
  if (w.group_size <= 0) return str_cat("group_size = ", w.group_size);
  const int64_t G = w.num_groups();
  auto bad = [](const Tensor& t, DType dt, const Shape& shape) {
    return !t.defined() || t.device() != Device::CPU || t.dtype() != dt || t.shape() != shape;
  };
  if (bad(w.qweight, DType::I32, {K / 8, N})) return str_cat("qweight is not a CPU I32 tensor [", K / 8, ", ", N, "]");
  if (bad(w.scales, DType::F16, {G, N})) return str_cat("scales is not a CPU F16 tensor [", G, ", ", N, "]");
  if (bad(w.zeros, DType::U8, {G, N})) return str_cat("zeros is not a CPU U8 tensor [", G, ", ", N, "]");
  if (w.g_idx.defined() && bad(w.g_idx, DType::I32, {K})) return str_cat("g_idx is not a CPU I32 tensor [", K, "]");
  return {};
}

W4A16SourceView view_of(const GroupedIntWeight& w) {
  W4A16SourceView v;
  v.bits = w.bits;
  v.in_features = w.in_features;
  v.out_features = w.out_features;
  v.group_size = w.group_size;
  v.qweight = w.qweight.data<uint32_t>();
  v.scales = w.scales.data<uint16_t>();
  v.zeros = w.zeros.data<uint8_t>();
  v.g_idx = w.g_idx.defined() ? w.g_idx.data<int32_t>() : nullptr;
  return v;
}

// Stable sort of the inputs by group, or empty when g_idx is absent or already k / group_size.
std::vector<int32_t> act_order_permutation(const W4A16SourceView& w) {
  if (!w.g_idx) return {};
  const int32_t* gi = w.g_idx;
  const int64_t K = w.in_features;
  bool identity = true;
  for (int64_t k = 0; k < K && identity; ++k) identity = gi[k] == k / w.group_size;
  if (identity) return {};
  std::vector<int32_t> perm(static_cast<size_t>(K));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [gi](int32_t a, int32_t b) { return gi[a] < gi[b]; });
  return perm;
}

// Column of a strip that lane-set c uses at position i (i = 2j + h): see the header.
constexpr int64_t strip_column(int64_t c, int64_t i) { return 16 * (i / 2) + 8 * (i % 2) + c; }

}  // namespace

bool w4a16_kernel_supports(const W4A16SourceView& w, std::string* why) {
  std::string reason = unsupported_reason(w);
  if (why) *why = reason;
  return reason.empty();
}

W4A16Repacked repack_w4a16(const W4A16SourceView& w) {
  const std::string reason = unsupported_reason(w);
  OMNI_CHECK(reason.empty(), "W4A16 CUDA repack: unsupported weight: ", reason);
  const int64_t K = w.in_features, N = w.out_features, G = w.num_groups();
  W4A16Repacked out;
  out.in_features = K;
  out.out_features = N;
  out.group_size = w.group_size;
  out.num_groups = G;
  out.perm = act_order_permutation(w);

  const uint32_t* qw = w.qweight;
  auto code = [&](int64_t k, int64_t n) -> uint32_t {
    const int64_t src_k = out.perm.empty() ? k : out.perm[static_cast<size_t>(k)];
    return (qw[(src_k / 8) * N + n] >> (4 * (src_k % 8))) & 0xfu;
  };

  const int64_t strips = N / kW4StripN, ktiles = K / kW4TileK;
  out.qweight.assign(static_cast<size_t>(N * K / 8), 0u);
  for (int64_t s = 0; s < strips; ++s)
    for (int64_t kt = 0; kt < ktiles; ++kt)
      for (int64_t lane = 0; lane < 32; ++lane)
        for (int64_t j = 0; j < 4; ++j) {
          const int64_t c = lane / 4, t = lane % 4, k0 = kt * kW4TileK;
          uint32_t word = 0;
          for (int64_t h = 0; h < 2; ++h) {
            const int64_t n = s * kW4StripN + 16 * j + 8 * h + c;
            // Register b0 (k = 2t, 2t+1) at nibbles 2h and 2h+4, b1 (k = 2t+8, 2t+9) at 2h+1 and 2h+5.
            word |= code(k0 + 2 * t, n) << (4 * (2 * h));
            word |= code(k0 + 2 * t + 1, n) << (4 * (2 * h + 4));
            word |= code(k0 + 2 * t + 8, n) << (4 * (2 * h + 1));
            word |= code(k0 + 2 * t + 9, n) << (4 * (2 * h + 5));
          }
          out.qweight[static_cast<size_t>(((s * ktiles + kt) * 32 + lane) * 4 + j)] = word;
        }

  const uint16_t* sc = w.scales;
  const uint8_t* zp = w.zeros;
  out.symmetric = std::all_of(zp, zp + G * N, [](uint8_t z) { return z == 8; });
  out.scales.assign(static_cast<size_t>(G * N), 0);
  if (!out.symmetric) out.zeros.assign(static_cast<size_t>(G * N / 8), 0u);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t s = 0; s < strips; ++s)
      for (int64_t c = 0; c < 8; ++c)
        for (int64_t i = 0; i < 8; ++i) {
          const int64_t n = s * kW4StripN + strip_column(c, i);
          out.scales[static_cast<size_t>(g * N + s * kW4StripN + 8 * c + i)] = sc[g * N + n];
          if (!out.symmetric)
            out.zeros[static_cast<size_t>(g * (N / 8) + s * 8 + c)] |= uint32_t{zp[g * N + n]} << (4 * i);
        }
  return out;
}

bool w4a16_kernel_supports(const GroupedIntWeight& w, std::string* why) {
  const std::string reason = tensor_reason(w);
  if (!reason.empty()) {
    if (why) *why = reason;
    return false;
  }
  return w4a16_kernel_supports(view_of(w), why);
}

W4A16Repacked repack_w4a16(const GroupedIntWeight& w) {
  const std::string reason = tensor_reason(w);
  OMNI_CHECK(reason.empty(), "W4A16 CUDA repack: unsupported weight: ", reason);
  return repack_w4a16(view_of(w));
}

}  // namespace omni::cuda
