#include "quant/pack.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"

namespace omni {
namespace {

// Output 0 holds codes 1..8 for inputs 0..7, output 1 alternates 15, 0: input 8r+j sits in bits 4j..4j+3.
TEST(Pack, Int4WordMatchesHandMadeLayout) {
  const std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6, 7, 8,  // output 0, inputs 0..7
                                      15, 0, 15, 0, 15, 0, 15, 0};
  const Tensor q = pack_auto_gptq_int4(codes.data(), 2, 8);
  ASSERT_EQ(q.shape(), (Shape{1, 2}));
  EXPECT_EQ(q.dtype(), DType::I32);
  EXPECT_EQ(static_cast<uint32_t>(q.data<int32_t>()[0]), 0x87654321u);  // a negative int32, as in the files
  EXPECT_EQ(static_cast<uint32_t>(q.data<int32_t>()[1]), 0x0F0F0F0Fu);
  EXPECT_EQ(unpack_auto_gptq_int4(q, 2, 8), codes);
}

TEST(Pack, QzerosSymmetricWord) {
  const std::vector<uint8_t> stored(2 * 16, 7);  // 2 groups, 16 outputs, zero − 1 = 7
  const Tensor qz = pack_auto_gptq_qzeros(stored.data(), 2, 16, 4);
  ASSERT_EQ(qz.shape(), (Shape{2, 2}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(qz.data<int32_t>()[i], 2004318071);  // 0x77777777
  std::vector<uint8_t> mixed(8);
  for (int i = 0; i < 8; ++i) mixed[static_cast<size_t>(i)] = static_cast<uint8_t>(i * 2);
  const Tensor one = pack_auto_gptq_qzeros(mixed.data(), 1, 8, 4);
  EXPECT_EQ(static_cast<uint32_t>(one.data<int32_t>()[0]), 0xECA86420u);  // output j in nibble j
  EXPECT_EQ(unpack_auto_gptq_qzeros(one, 1, 8, 4), mixed);
}

TEST(Pack, TwoAndEightBitWords) {
  std::vector<uint8_t> c2(16);
  for (int j = 0; j < 16; ++j) c2[static_cast<size_t>(j)] = static_cast<uint8_t>(j % 4);
  const Tensor q2 = pack_auto_gptq_qweight(c2.data(), 1, 16, 2);
  ASSERT_EQ(q2.shape(), (Shape{1, 1}));
  EXPECT_EQ(static_cast<uint32_t>(q2.data<int32_t>()[0]), 0xE4E4E4E4u);  // 0,1,2,3 -> 0b11100100
  const std::vector<uint8_t> c8 = {0x12, 0x34, 0x56, 0x78};
  const Tensor q8 = pack_auto_gptq_qweight(c8.data(), 1, 4, 8);
  EXPECT_EQ(static_cast<uint32_t>(q8.data<int32_t>()[0]), 0x78563412u);
}

TEST(Pack, RoundTripsRandomCodes) {
  std::mt19937 rng(123);
  for (int bits : {2, 3, 4, 8}) {
    const int64_t N = 64, K = 96;
    std::uniform_int_distribution<int> ud(0, (1 << bits) - 1);
    std::vector<uint8_t> codes(N * K);
    for (uint8_t& c : codes) c = static_cast<uint8_t>(ud(rng));
    const Tensor q = pack_auto_gptq_qweight(codes.data(), N, K, bits);
    EXPECT_EQ(q.shape(), (Shape{K * bits / 32, N}));
    EXPECT_EQ(unpack_auto_gptq_qweight(q, N, K, bits), codes) << bits << " bits";
    std::vector<uint8_t> zeros(3 * N);
    for (uint8_t& z : zeros) z = static_cast<uint8_t>(ud(rng));
    EXPECT_EQ(unpack_auto_gptq_qzeros(pack_auto_gptq_qzeros(zeros.data(), 3, N, bits), 3, N, bits), zeros);
  }
}

// auto_gptq's 3-bit layout, written out the way its packer builds it: per 32 inputs, word 0 takes values 0..9
// at bits 3j and the low 2 bits of value 10 at bits 30..31; word 1 takes value 10's top bit at bit 0, values
// 11..20 at bits 3j+1 and the low bit of value 21 at bit 31; word 2 takes value 21's top 2 bits at bits 0..1 and
// values 22..31 at bits 3j+2.
TEST(Pack, ThreeBitMatchesAutoGptqLayout) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> ud(0, 7);
  const int64_t N = 3, K = 64;
  std::vector<uint8_t> codes(N * K);
  for (uint8_t& c : codes) c = static_cast<uint8_t>(ud(rng));
  std::vector<uint32_t> want(static_cast<size_t>(K * 3 / 32 * N), 0);
  for (int64_t n = 0; n < N; ++n) {
    auto v = [&](int64_t k) { return static_cast<uint32_t>(codes[static_cast<size_t>(n * K + k)]); };
    for (int64_t blk = 0; blk < K / 32; ++blk) {
      const int64_t i = blk * 32, row = blk * 3;
      uint32_t w0 = 0, w1 = 0, w2 = 0;
      for (int j = 0; j < 10; ++j) w0 |= v(i + j) << (3 * j);
      w0 |= v(i + 10) << 30;
      w1 |= (v(i + 10) >> 2) & 1u;
      for (int j = 0; j < 10; ++j) w1 |= v(i + 11 + j) << (3 * j + 1);
      w1 |= v(i + 21) << 31;
      w2 |= (v(i + 21) >> 1) & 3u;
      for (int j = 0; j < 10; ++j) w2 |= v(i + 22 + j) << (3 * j + 2);
      want[static_cast<size_t>(row * N + n)] = w0;
      want[static_cast<size_t>((row + 1) * N + n)] = w1;
      want[static_cast<size_t>((row + 2) * N + n)] = w2;
    }
  }
  const Tensor q = pack_auto_gptq_qweight(codes.data(), N, K, 3);
  ASSERT_EQ(q.shape(), (Shape{6, N}));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(static_cast<uint32_t>(q.data<int32_t>()[i]), want[i]) << i;
  EXPECT_EQ(unpack_auto_gptq_qweight(q, N, K, 3), codes);
}

TEST(Pack, RejectsWhatItCannotPack) {
  std::vector<uint8_t> codes(32, 1);
  EXPECT_THROW(pack_auto_gptq_qweight(codes.data(), 1, 32, 5), Error);   // 5-bit: no such layout
  EXPECT_THROW(pack_auto_gptq_qweight(codes.data(), 1, 16, 3), Error);   // 3-bit needs runs of 32 inputs
  EXPECT_THROW(pack_auto_gptq_qweight(codes.data(), 1, 12, 4), Error);   // K not a multiple of 8
  codes[5] = 16;
  EXPECT_THROW(pack_auto_gptq_qweight(codes.data(), 1, 32, 4), Error);   // code too wide
  const Tensor q = pack_auto_gptq_int4(std::vector<uint8_t>(16, 3).data(), 1, 16);
  EXPECT_THROW(unpack_auto_gptq_int4(q, 2, 16), Error);                 // wrong shape
  try {
    pack_auto_gptq_qweight(codes.data(), 1, 16, 3);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a multiple of 32"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace omni
