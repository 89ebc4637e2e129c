// The one place for the quantize–dequantize (QDQ) formula of AUTOROUND.md §2 and its straight-through gradients,
// shared by host and device code: quant/ (RTN, freezing, the reference) and every backend's fake-quant ops
// compute each group with these functions, so a CUDA kernel and the CPU agree bit for bit.
//
// Per group of `group_size` consecutive inputs of one output row: a scale (an f16 value, possibly negative for
// full-range symmetric), an integer zero point and unsigned codes in the GPTQ convention:
//   u = clamp(round_half_even(w / s + v) + zero, 0, 2^bits − 1),  Ŵ = s · (u − zero).
// For full-range symmetric zero = 2^(bits−1), so u − zero is the signed q of §2 clamped to
// [−2^(bits−1), 2^(bits−1) − 1]; for asymmetric zero is the rounded zero point zp.
//
// Header-only, C++17, no exceptions or containers: nvcc compiles it into kernels (OMNI_HD).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/half.h"
#include "core/hd.h"

namespace omni {

struct QuantScheme {
  int bits = 4;               // 2, 3, 4 or 8
  int64_t group_size = 128;   // 32, 64, 128, ... or -1 = one group per output row
  bool sym = true;            // full-range symmetric (default) or asymmetric

  // Throws naming the bad field unless bits is 2/3/4/8 and group_size is -1 or positive (host only).
  void validate() const;
  // The group size used for a row of `in_features` inputs (-1 -> in_features).
  OMNI_HD int64_t group_size_for(int64_t in_features) const { return group_size < 0 ? in_features : group_size; }
  OMNI_HD int64_t num_groups_for(int64_t in_features) const {
    const int64_t g = group_size_for(in_features);
    return g <= 0 ? 0 : (in_features + g - 1) / g;
  }
  OMNI_HD int max_code() const { return (1 << bits) - 1; }  // largest unsigned code
  OMNI_HD int sym_zero() const { return 1 << (bits - 1); }  // maxq of §2 for symmetric
};

// The scale magnitude floor of §2. Scales are f16 values; no f16 value lies in [1e-5, f16(1e-5)), so testing
// |s| < 1e-5 and replacing by the f16 value nearest to 1e-5 is what a f16 clamp does.
inline constexpr float kScaleFloor = 1e-5f;

// Everything about one group's scale that the forward needs and that the STE backward (§2 gradients) needs to
// route ∂L/∂s to alpha or beta.
struct GroupScale {
  float scale = 0.f;            // an f16 value (exactly representable), may be negative when sym
  int zero = 0;                 // code of real 0: 2^(bits-1) when sym, zp in [0, 2^bits-1] when asym
  bool floored = false;         // |s| was raised to the floor: ∂L/∂s = 0
  bool scale_from_max = false;  // sym: s = −M/maxq depends on alpha (else s = +m/maxq depends on beta)
  float wmin = 0.f;             // min(min w, 0) of the group, before beta
  float wmax = 0.f;             // max(max w, 0) of the group, before alpha
};

namespace qdq {

// std::clamp's comparisons (NaN passes through), usable in device code.
OMNI_HD inline float clamp(float x, float lo, float hi) { return x < lo ? lo : (hi < x ? hi : x); }
// Round half to even (the default rounding mode on the host; rintf on the device).
OMNI_HD inline float round_half_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::nearbyint(x);
#endif
}

// A product that is never fused with a following add, so the formula rounds every product on every machine.
// nvcc contracts a·b + c into an FMA by default, and so does g++ in C++ mode wherever the target has FMA
// (-march=native on any recent x86; -std=c++20 does not turn contraction off as -std=c11 does for C):
// __fmul_rn is never contracted on the device, and on the host the empty asm makes the rounded product a
// value the compiler must materialise before any add.
OMNI_HD inline float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  float p = a * b;
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+x"(p));
#elif defined(__aarch64__)
  asm("" : "+w"(p));
#endif
  return p;
#endif
}

}  // namespace qdq

// min(min_j w_j, 0) and max(max_j w_j, 0) over n elements (starting at 0 includes 0 in the range, §2).
OMNI_HD inline void group_min_max(const float* w, int64_t n, float* wmin, float* wmax) {
  float lo = 0.f, hi = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    lo = w[j] < lo ? w[j] : lo;  // std::min / std::max order of comparison
    hi = hi < w[j] ? w[j] : hi;
  }
  *wmin = lo;
  *wmax = hi;
}

// The scale and zero point of one group from its (un-shrunk) extremes; alpha and beta are clamped to [0, 1]
// first, as the tuner requires before every forward.
OMNI_HD inline GroupScale compute_group_scale(float wmin, float wmax, float alpha, float beta,
                                              const QuantScheme& scheme) {
  alpha = qdq::clamp(alpha, 0.f, 1.f);
  beta = qdq::clamp(beta, 0.f, 1.f);
  GroupScale gs;
  gs.wmin = wmin;
  gs.wmax = wmax;
  const float floor_f16 = round_to_f16(kScaleFloor);
  if (scheme.sym) {
    const float maxq = static_cast<float>(scheme.sym_zero());
    const float m = -qdq::mul(wmin, beta);  // magnitude of the negative extreme
    const float M = qdq::mul(wmax, alpha);  // positive extreme
    // The dominant extreme maps to code −maxq; a tie goes to the positive side (negative scale).
    gs.scale_from_max = !(M < m);
    // f16 rounding of the scale, then the magnitude floor keeping the sign (a zero or −0 scale becomes +floor,
    // as a "s < 0 ? min(s, −floor) : max(s, floor)" clamp gives).
    const float s = round_to_f16(gs.scale_from_max ? -M / maxq : m / maxq);
    gs.floored = (s < 0.f ? -s : s) < kScaleFloor;
    gs.scale = !gs.floored ? s : (s < 0.f ? -floor_f16 : floor_f16);
    gs.zero = scheme.sym_zero();
  } else {
    const float maxq = static_cast<float>(scheme.max_code());
    const float lo = qdq::mul(wmin, beta), hi = qdq::mul(wmax, alpha);
    const float s = round_to_f16((hi - lo) / maxq);
    gs.floored = s < kScaleFloor;  // asym scales are never negative
    gs.scale = gs.floored ? floor_f16 : s;
    // zp = round(−wmin'/s) lies in [0, maxq] up to the f16 rounding of s; the clamp only guards the u8 storage.
    const float zp = qdq::round_half_even(-lo / gs.scale);
    gs.zero = static_cast<int>(qdq::clamp(zp, 0.f, maxq));
  }
  return gs;
}

// The unsigned code of one element (v = its rounding offset, 0 for RTN); *inside says whether the unclamped
// rounded value was in the code range (the STE passes gradient there).
OMNI_HD inline int qdq_code(float w, float v, const GroupScale& gs, const QuantScheme& scheme, bool* inside) {
  const float max_code = static_cast<float>(scheme.max_code());
  const float x = w / gs.scale + v;  // a true division, as the reference does, not a multiply by 1/s
  const float u = qdq::round_half_even(x) + static_cast<float>(gs.zero);
  *inside = u >= 0.f && u <= max_code;
  return static_cast<int>(qdq::clamp(u, 0.f, max_code));
}

OMNI_HD inline float dequantize_code(int code, const GroupScale& gs) {
  return qdq::mul(gs.scale, static_cast<float>(code - gs.zero));
}

// The STE gradients of one group of n elements (qdq_grad.h has the derivation): adds G_j · s · in_j to grad_v[j]
// (when grad_v is not null) and returns ∂L/∂alpha and ∂L/∂beta of the group in *d_alpha, *d_beta. `alpha` and
// `beta` are the values the forward used (clamped here as there).
OMNI_HD inline void qdq_group_backward(const float* w, const float* v, const float* grad_w_hat, int64_t n,
                                       float alpha, float beta, const QuantScheme& scheme, float* grad_v,
                                       float* d_alpha, float* d_beta) {
  alpha = qdq::clamp(alpha, 0.f, 1.f);
  beta = qdq::clamp(beta, 0.f, 1.f);
  const float maxq = static_cast<float>(scheme.sym ? scheme.sym_zero() : scheme.max_code());
  float wmin, wmax;
  group_min_max(w, n, &wmin, &wmax);
  const GroupScale gs = compute_group_scale(wmin, wmax, alpha, beta, scheme);
  const float s = gs.scale;
  const float lo = qdq::mul(wmin, beta);  // the shrunk minimum (asym)
  float ds = 0.f, g_clamped = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    const float G = grad_w_hat[j];
    bool inside = false;
    const int code = qdq_code(w[j], v ? v[j] : 0.f, gs, scheme, &inside);
    const float q = static_cast<float>(code - gs.zero);
    if (inside) {
      if (grad_v) grad_v[j] += qdq::mul(G, s);
      ds += qdq::mul(G, q - w[j] / s);
    } else if (scheme.sym) {
      ds += qdq::mul(G, q);
    } else {
      ds += qdq::mul(G, q - lo / s);
      g_clamped += G;
    }
  }
  if (gs.floored) ds = 0.f;
  float da = 0.f, db = 0.f;
  if (scheme.sym) {
    if (gs.scale_from_max)
      da = qdq::mul(ds, -wmax / maxq);
    else
      db = qdq::mul(ds, -wmin / maxq);
  } else {
    da = qdq::mul(ds, wmax / maxq);
    db = qdq::mul(ds, -wmin / maxq);
    const float zp_raw = qdq::round_half_even(-lo / s);
    if (zp_raw >= 0.f && zp_raw <= maxq) db += qdq::mul(wmin, g_clamped);
  }
  *d_alpha = da;
  *d_beta = db;
}

}  // namespace omni
