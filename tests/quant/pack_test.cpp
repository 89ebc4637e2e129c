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
  for (int bits : {2, 4, 8}) {
    const int64_t N = 48, K = 64;
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

TEST(Pack, RejectsWhatItCannotPack) {
  std::vector<uint8_t> codes(32, 1);
  EXPECT_THROW(pack_auto_gptq_qweight(codes.data(), 1, 32, 3), Error);   // 3-bit: not yet
  EXPECT_THROW(pack_auto_gptq_qweight(codes.data(), 1, 12, 4), Error);   // K not a multiple of 8
  codes[5] = 16;
  EXPECT_THROW(pack_auto_gptq_qweight(codes.data(), 1, 32, 4), Error);   // code too wide
  const Tensor q = pack_auto_gptq_int4(std::vector<uint8_t>(16, 3).data(), 1, 16);
  EXPECT_THROW(unpack_auto_gptq_int4(q, 2, 16), Error);                 // wrong shape
  try {
    pack_auto_gptq_qweight(codes.data(), 1, 32, 3);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not supported yet"), std::string::npos);
  }
}

}  // namespace
}  // namespace omni
