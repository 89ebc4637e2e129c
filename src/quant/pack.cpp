#include "quant/pack.h"

#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {

int64_t gptq_packed_words(int64_t values, int bits, const char* what) {
  const int64_t block = gptq_values_per_block(bits);
  OMNI_CHECK(values % block == 0, what, ": ", values, " values are not a multiple of ", block, " (", bits,
             "-bit values fill whole int32 words in runs of ", block, ")");
  return values * bits / 32;
}

namespace {

// Value i of a packed stream whose consecutive words are `stride` apart.
inline uint32_t read_field(const uint32_t* words, int64_t stride, int64_t i, int bits, uint32_t mask) {
  const int64_t bit = i * bits, w = bit / 32;
  const int off = static_cast<int>(bit % 32);
  uint32_t v = words[w * stride] >> off;
  if (off + bits > 32) v |= words[(w + 1) * stride] << (32 - off);
  return v & mask;
}

inline void write_field(uint32_t* words, int64_t stride, int64_t i, int bits, uint32_t value) {
  const int64_t bit = i * bits, w = bit / 32;
  const int off = static_cast<int>(bit % 32);
  words[w * stride] |= value << off;
  if (off + bits > 32) words[(w + 1) * stride] |= value >> (32 - off);
}

}  // namespace

Tensor pack_auto_gptq_qweight(const uint8_t* codes, int64_t out_features, int64_t in_features, int bits) {
  const int64_t words = gptq_packed_words(in_features, bits, "pack qweight: in_features");
  Tensor out = Tensor::zeros({words, out_features}, DType::I32);
  uint32_t* dst = out.data<uint32_t>();
  const uint32_t mask = (1u << bits) - 1u;
  // Tiles of kTile outputs: each task walks kTile code rows front to back and writes kTile adjacent words per
  // word row, so neither side is accessed with a large stride one element at a time.
  constexpr int64_t kTile = 16;
  const int64_t tiles = (out_features + kTile - 1) / kTile;
  parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * kTile, n1 = std::min(out_features, n0 + kTile);
      for (int64_t n = n0; n < n1; ++n) {
        const uint8_t* src = codes + n * in_features;
        for (int64_t k = 0; k < in_features; ++k) {
          OMNI_CHECK(src[k] <= mask, "pack qweight: code ", int(src[k]), " of output ", n, " input ", k,
                     " does not fit ", bits, " bits");
          write_field(dst + n, out_features, k, bits, src[k]);
        }
      }
    }
  });
  return out;
}

std::vector<uint8_t> unpack_auto_gptq_qweight(const Tensor& qweight, int64_t out_features, int64_t in_features,
                                              int bits) {
  OMNI_CHECK(qweight.dtype() == DType::I32, "qweight must be I32, found ", dtype_name(qweight.dtype()));
  const Shape want{gptq_packed_words(in_features, bits, "unpack qweight: in_features"), out_features};
  OMNI_CHECK(qweight.shape() == want, "qweight shape ", shape_str(qweight.shape()), ", expected ", shape_str(want),
             " for ", in_features, " inputs, ", out_features, " outputs at ", bits, " bits");
  const uint32_t* src = qweight.data<uint32_t>();
  const uint32_t mask = (1u << bits) - 1u;
  std::vector<uint8_t> codes(static_cast<size_t>(out_features * in_features));
  parallel_for(0, out_features, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, in_features)),
               [&](int64_t n0, int64_t n1) {
                 for (int64_t n = n0; n < n1; ++n)
                   for (int64_t k = 0; k < in_features; ++k)
                     codes[static_cast<size_t>(n * in_features + k)] =
                         static_cast<uint8_t>(read_field(src + n, out_features, k, bits, mask));
               });
  return codes;
}

Tensor pack_auto_gptq_qzeros(const uint8_t* stored, int64_t groups, int64_t out_features, int bits) {
  const int64_t words = gptq_packed_words(out_features, bits, "pack qzeros: out_features");
  Tensor out = Tensor::zeros({groups, words}, DType::I32);
  uint32_t* dst = out.data<uint32_t>();
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t n = 0; n < out_features; ++n) {
      const uint8_t z = stored[g * out_features + n];
      OMNI_CHECK(z <= mask, "pack qzeros: stored zero ", int(z), " of group ", g, " output ", n, " does not fit ",
                 bits, " bits");
      write_field(dst + g * words, 1, n, bits, z);
    }
  return out;
}

std::vector<uint8_t> unpack_auto_gptq_qzeros(const Tensor& qzeros, int64_t groups, int64_t out_features, int bits) {
  OMNI_CHECK(qzeros.dtype() == DType::I32, "qzeros must be I32, found ", dtype_name(qzeros.dtype()));
  const Shape want{groups, gptq_packed_words(out_features, bits, "unpack qzeros: out_features")};
  OMNI_CHECK(qzeros.shape() == want, "qzeros shape ", shape_str(qzeros.shape()), ", expected ", shape_str(want),
             " for ", groups, " groups, ", out_features, " outputs at ", bits, " bits");
  const uint32_t* src = qzeros.data<uint32_t>();
  const uint32_t mask = (1u << bits) - 1u;
  std::vector<uint8_t> out(static_cast<size_t>(groups * out_features));
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t n = 0; n < out_features; ++n)
      out[static_cast<size_t>(g * out_features + n)] =
          static_cast<uint8_t>(read_field(src + g * want[1], 1, n, bits, mask));
  return out;
}

}  // namespace omni
