#include "quant/pack.h"

#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {

int64_t gptq_values_per_word(int bits) {
  if (bits == 3) OMNI_FAIL("3-bit GPTQ packing (32 values in 3 words) is not supported yet");
  OMNI_CHECK(bits == 2 || bits == 4 || bits == 8, "GPTQ packing supports 2, 4 and 8 bits, found ", bits);
  return 32 / bits;
}

Tensor pack_auto_gptq_qweight(const uint8_t* codes, int64_t out_features, int64_t in_features, int bits) {
  const int64_t per_word = gptq_values_per_word(bits);
  OMNI_CHECK(in_features % per_word == 0, "pack qweight: in_features ", in_features, " is not a multiple of ",
             per_word, " (", bits, "-bit codes per int32)");
  const int64_t words = in_features / per_word;
  Tensor out = Tensor::empty({words, out_features}, DType::I32);
  uint32_t* dst = out.data<uint32_t>();
  const uint32_t mask = (1u << bits) - 1u;
  // Tiles of kTile outputs: each task reads kTile code rows front to back and writes kTile adjacent words per
  // word row, so neither side is accessed with a large stride one element at a time.
  constexpr int64_t kTile = 16;
  const int64_t tiles = (out_features + kTile - 1) / kTile;
  parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * kTile, n1 = std::min(out_features, n0 + kTile);
      uint32_t too_wide = 0;
      for (int64_t r = 0; r < words; ++r) {
        for (int64_t n = n0; n < n1; ++n) {
          const uint8_t* src = codes + n * in_features + r * per_word;
          uint32_t word = 0;
          for (int64_t j = 0; j < per_word; ++j) {
            too_wide |= src[j] & ~mask;
            word |= static_cast<uint32_t>(src[j]) << (bits * j);
          }
          dst[r * out_features + n] = word;
        }
      }
      if (too_wide) {
        for (int64_t n = n0; n < n1; ++n)
          for (int64_t k = 0; k < in_features; ++k)
            OMNI_CHECK(codes[n * in_features + k] <= mask, "pack qweight: code ", int(codes[n * in_features + k]),
                       " of output ", n, " input ", k, " does not fit ", bits, " bits");
      }
    }
  });
  return out;
}

std::vector<uint8_t> unpack_auto_gptq_qweight(const Tensor& qweight, int64_t out_features, int64_t in_features,
                                              int bits) {
  const int64_t per_word = gptq_values_per_word(bits);
  OMNI_CHECK(qweight.dtype() == DType::I32, "qweight must be I32, found ", dtype_name(qweight.dtype()));
  OMNI_CHECK(in_features % per_word == 0, "unpack qweight: in_features ", in_features, " is not a multiple of ",
             per_word);
  const Shape want{in_features / per_word, out_features};
  OMNI_CHECK(qweight.shape() == want, "qweight shape ", shape_str(qweight.shape()), ", expected ", shape_str(want),
             " for ", in_features, " inputs, ", out_features, " outputs at ", bits, " bits");
  const uint32_t* src = qweight.data<uint32_t>();
  const uint32_t mask = (1u << bits) - 1u;
  std::vector<uint8_t> codes(static_cast<size_t>(out_features * in_features));
  parallel_for(0, out_features, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, in_features)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t k = 0; k < in_features; ++k) {
        const uint32_t word = src[(k / per_word) * out_features + n];
        codes[static_cast<size_t>(n * in_features + k)] =
            static_cast<uint8_t>((word >> (bits * (k % per_word))) & mask);
      }
    }
  });
  return codes;
}

Tensor pack_auto_gptq_qzeros(const uint8_t* stored, int64_t groups, int64_t out_features, int bits) {
  const int64_t per_word = gptq_values_per_word(bits);
  OMNI_CHECK(out_features % per_word == 0, "pack qzeros: out_features ", out_features, " is not a multiple of ",
             per_word);
  const int64_t words = out_features / per_word;
  Tensor out = Tensor::empty({groups, words}, DType::I32);
  uint32_t* dst = out.data<uint32_t>();
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t c = 0; c < words; ++c) {
      uint32_t word = 0;
      for (int64_t j = 0; j < per_word; ++j) {
        const uint8_t z = stored[g * out_features + c * per_word + j];
        OMNI_CHECK(z <= mask, "pack qzeros: stored zero ", int(z), " of group ", g, " output ", c * per_word + j,
                   " does not fit ", bits, " bits");
        word |= static_cast<uint32_t>(z) << (bits * j);
      }
      dst[g * words + c] = word;
    }
  }
  return out;
}

std::vector<uint8_t> unpack_auto_gptq_qzeros(const Tensor& qzeros, int64_t groups, int64_t out_features, int bits) {
  const int64_t per_word = gptq_values_per_word(bits);
  OMNI_CHECK(qzeros.dtype() == DType::I32, "qzeros must be I32, found ", dtype_name(qzeros.dtype()));
  OMNI_CHECK(out_features % per_word == 0, "unpack qzeros: out_features ", out_features, " is not a multiple of ",
             per_word);
  const Shape want{groups, out_features / per_word};
  OMNI_CHECK(qzeros.shape() == want, "qzeros shape ", shape_str(qzeros.shape()), ", expected ", shape_str(want),
             " for ", groups, " groups, ", out_features, " outputs at ", bits, " bits");
  const uint32_t* src = qzeros.data<uint32_t>();
  const uint32_t mask = (1u << bits) - 1u;
  std::vector<uint8_t> out(static_cast<size_t>(groups * out_features));
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t n = 0; n < out_features; ++n)
      out[static_cast<size_t>(g * out_features + n)] =
          static_cast<uint8_t>((src[g * want[1] + n / per_word] >> (bits * (n % per_word))) & mask);
  return out;
}

}  // namespace omni
