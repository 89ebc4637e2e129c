// The one place for the quantize–dequantize (QDQ) formula of AUTOROUND.md §2: per group of `group_size`
// consecutive inputs of one output row, a scale (f16 value, possibly negative for full-range symmetric), an
// integer zero point and unsigned integer codes. RTN uses it with V = 0, alpha = beta = 1; the AutoRound tuner
// passes its rounding offsets V and min/max shrink factors alpha/beta.
//
// Codes are stored unsigned in the GPTQ convention: u = clamp(round_half_even(w / s + v) + zero, 0, 2^bits − 1),
// dequantised as s · (u − zero). For full-range symmetric zero = 2^(bits−1), so u − zero is the signed q of §2
// clamped to [−2^(bits−1), 2^(bits−1) − 1]; for asymmetric zero is the rounded zero point zp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace omni {

struct QuantScheme {
  int bits = 4;               // 2, 3, 4 or 8
  int64_t group_size = 128;   // 32, 64, 128, ... or -1 = one group per output row
  bool sym = true;            // full-range symmetric (default) or asymmetric

  // Throws naming the bad field unless bits is 2/3/4/8 and group_size is -1 or positive.
  void validate() const;
  // The group size used for a row of `in_features` inputs (-1 -> in_features).
  int64_t group_size_for(int64_t in_features) const { return group_size < 0 ? in_features : group_size; }
  int64_t num_groups_for(int64_t in_features) const;
  int max_code() const { return (1 << bits) - 1; }                    // largest unsigned code
  int sym_zero() const { return 1 << (bits - 1); }                    // maxq of §2 for symmetric
};

// The scale magnitude floor of §2. Scales are f16 values; no f16 value lies in [1e-5, f16(1e-5)), so testing
// |s| < 1e-5 and replacing by the f16 value nearest to 1e-5 is what a f16 clamp does.
inline constexpr float kScaleFloor = 1e-5f;

// Everything about one group's scale that the forward needs and that the STE backward (§2 gradients) needs to
// route ∂L/∂s to alpha or beta. Element-wise "in range" flags are recomputable from the codes' inputs, see
// quantize_group.
struct GroupScale {
  float scale = 0.f;            // an f16 value (exactly representable), may be negative when sym
  int zero = 0;                 // code of real 0: 2^(bits-1) when sym, zp in [0, 2^bits-1] when asym
  bool floored = false;         // |s| was raised to the floor: ∂L/∂s = 0
  bool scale_from_max = false;  // sym: s = −M/maxq depends on alpha (else s = +m/maxq depends on beta)
  float wmin = 0.f;             // min(min w, 0) of the group, before beta
  float wmax = 0.f;             // max(max w, 0) of the group, before alpha
};

// min(min_j w_j, 0) and max(max_j w_j, 0) over n elements.
void group_min_max(const float* w, int64_t n, float* wmin, float* wmax);

// The scale and zero point of one group from its (un-shrunk) extremes; alpha and beta are clamped to [0, 1]
// first, as the tuner requires before every forward.
GroupScale compute_group_scale(float wmin, float wmax, float alpha, float beta, const QuantScheme& scheme);

// Codes of the n elements of one group. `v` (rounding offsets) may be null (= 0). When `in_range` is not null
// it receives 1 where the unclamped rounded value was inside the code range (the STE passes gradient there).
void quantize_group(const float* w, const float* v, int64_t n, const GroupScale& gs, const QuantScheme& scheme,
                    uint8_t* codes, uint8_t* in_range = nullptr);

inline float dequantize_code(int code, const GroupScale& gs) {
  return gs.scale * static_cast<float>(code - gs.zero);
}

// Optional tuning parameters for a whole [N, K] weight (all may be null).
struct QdqParams {
  const float* v = nullptr;      // [N, K] rounding offsets
  const float* alpha = nullptr;  // [N, G] max-side shrink
  const float* beta = nullptr;   // [N, G] min-side shrink
};

// A weight [N, K] quantised row by row; groups run along K.
struct QuantizedMatrix {
  QuantScheme scheme;
  int64_t rows = 0;        // N (output features)
  int64_t cols = 0;        // K (input features)
  int64_t group_size = 0;  // effective, never -1
  int64_t num_groups = 0;  // G = ceil(K / group_size); a short last group is allowed
  std::vector<uint8_t> codes;      // [N, K] unsigned codes
  std::vector<GroupScale> groups;  // [N, G]

  const GroupScale& group(int64_t row, int64_t g) const { return groups[static_cast<size_t>(row * num_groups + g)]; }
};

// An empty result for a [rows, cols] weight: shape fields set, codes and group scales allocated. Validates the
// scheme and the shape (`what` names the caller in the error).
QuantizedMatrix allocate_quantized_matrix(int64_t rows, int64_t cols, const QuantScheme& scheme, const char* what);

// Quantises an f32 weight [N, K] (multithreaded over rows). Values of V/alpha/beta follow `params`.
QuantizedMatrix quantize_matrix(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                                const QdqParams& params = {});

// Ŵ in f32 [N, K] (the forward rounds it to bf16 where it needs to).
void dequantize_matrix(const QuantizedMatrix& qm, float* out);

// Quantise then dequantise in one call: the fake-quant weight.
std::vector<float> fake_quantize(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                                 const QdqParams& params = {});

}  // namespace omni
