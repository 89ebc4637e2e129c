// bf16 and IEEE f16 <-> f32 conversions, round-to-nearest-even, NaN preserved. Header-only so loops inline
// and vectorise.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"

namespace omni {

// std::bit_cast without <bit>: this header is also compiled by nvcc in C++17 mode. Compiles to a register move.
template <class To, class From>
OMNI_HD inline To bits_as(const From& from) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
#if defined(__CUDA_ARCH__)
  __builtin_memcpy(&to, &from, sizeof to);
#else
  std::memcpy(&to, &from, sizeof to);
#endif
  return to;
}

OMNI_HD inline float bf16_to_f32(uint16_t h) { return bits_as<float>(static_cast<uint32_t>(h) << 16); }

OMNI_HD inline uint16_t f32_to_bf16(float f) {
  uint32_t u = bits_as<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// Rounds a float to the nearest bf16 value and returns it as float (what a bf16 store then load gives).
OMNI_HD inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

OMNI_HD inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: value = man * 2^-24
      const float v = static_cast<float>(man) * 0x1p-24f;
      return sign ? -v : v;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  }
  return bits_as<float>(bits);
}

OMNI_HD inline uint16_t f32_to_f16(float f) {
  const uint32_t u = bits_as<uint32_t>(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow (>= 65520) -> inf
  if (abs < 0x38800000u) {                                                // result is subnormal or zero
    // value / 2^-24 rounded half-to-even gives the subnormal mantissa.
    const float v = bits_as<float>(abs) * 0x1p24f;
#if defined(__CUDA_ARCH__)
    const uint32_t q = static_cast<uint32_t>(rintf(v));
#else
    const uint32_t q = static_cast<uint32_t>(__builtin_nearbyintf(v));
#endif
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);  // round mantissa to 10 bits, half to even
  r -= 112u << 23;
  return static_cast<uint16_t>(sign | (r >> 13));
}

OMNI_HD inline float round_to_f16(float f) { return f16_to_f32(f32_to_f16(f)); }

}  // namespace omni
