#include "nn/random_weights.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/error.h"
#include "core/half.h"
#include "core/rng.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

constexpr int64_t kChunk = 1 << 16;  // values per generator stream: the fill is the same for any thread count

uint64_t stream_seed(uint64_t seed, const std::string& name, int64_t chunk) {
  return seed ^ (std::hash<std::string>{}(name) * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(chunk) << 1);
}

}  // namespace

Tensor random_bf16(const Shape& shape, uint64_t seed, const std::string& name, float scale, float offset) {
  Tensor t = Tensor::empty(shape, DType::BF16);
  uint16_t* p = t.data<uint16_t>();
  const int64_t n = t.numel();
  parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      SplitMix64 rng(stream_seed(seed, name, c));
      const int64_t end = std::min(n, (c + 1) * kChunk);
      for (int64_t i = c * kChunk; i < end; ++i) {
        const float u = static_cast<float>(rng.next() >> 40) * (1.0f / 16777216.0f);  // [0, 1)
        p[i] = f32_to_bf16(offset + scale * (2.0f * u - 1.0f));
      }
    }
  });
  return t;
}

GroupedIntWeight random_grouped_int(int64_t in, int64_t out, int bits, int64_t group_size, uint64_t seed,
                                    const std::string& name) {
  OMNI_CHECK(group_size > 0 && in % group_size == 0, name, ": in_features ", in, " is not a multiple of the group size ",
             group_size);
  GroupedIntWeight w;
  w.bits = bits;
  w.in_features = in;
  w.out_features = out;
  w.group_size = group_size;
  const int64_t per_word = 32 / bits;
  OMNI_CHECK(32 % bits == 0 && in % per_word == 0, name, ": ", bits, "-bit codes of ", in, " inputs do not fill int32 words");
  w.qweight = Tensor::empty({in / per_word, out}, DType::I32);
  uint32_t* q = reinterpret_cast<uint32_t*>(w.qweight.data<int32_t>());
  const int64_t words = w.qweight.numel();
  parallel_for(0, (words + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      SplitMix64 rng(stream_seed(seed, name + ".qweight", c));
      const int64_t end = std::min(words, (c + 1) * kChunk);
      for (int64_t i = c * kChunk; i < end; ++i) q[i] = static_cast<uint32_t>(rng.next());
    }
  });
  const int64_t groups = in / group_size;
  // Scales so that a dequantized weight is of order 1/sqrt(in), as a trained layer's.
  const float step = 1.0f / (static_cast<float>((1 << (bits - 1))) * std::sqrt(static_cast<float>(in)));
  Tensor s = random_bf16({groups, out}, seed, name + ".scales", 0.25f * step, step);
  w.scales = Tensor::empty({groups, out}, DType::F16);
  for (int64_t i = 0; i < s.numel(); ++i)
    w.scales.data<uint16_t>()[i] = f32_to_f16(bf16_to_f32(s.data<uint16_t>()[i]));
  w.zeros = Tensor::empty({groups, out}, DType::U8);
  std::fill_n(w.zeros.data<uint8_t>(), w.zeros.numel(), static_cast<uint8_t>(1 << (bits - 1)));
  return w;
}

}  // namespace omni
