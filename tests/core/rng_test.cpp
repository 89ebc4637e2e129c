// SplitMix64 and its shuffle against values computed independently in Python (plain integers masked to 64 bits,
// following the formula in core/rng.h), so the Python reference tools can replay our sample orders.
#include "core/rng.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

namespace omni {
namespace {

TEST(SplitMix64, MatchesKnownSequences) {
  SplitMix64 zero(0);  // the published splitmix64 test vector for seed 0
  EXPECT_EQ(zero.next(), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(zero.next(), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(zero.next(), 0x06C45D188009454Full);
  SplitMix64 r(42);
  EXPECT_EQ(r.next(), 0xBDD732262FEB6E95ull);
  EXPECT_EQ(r.next(), 0x28EFE333B266F103ull);
  EXPECT_EQ(r.next(), 0x47526757130F9F52ull);
}

TEST(SplitMix64, ShuffleMatchesPythonReplay) {
  std::vector<int> a(10);
  std::iota(a.begin(), a.end(), 0);
  SplitMix64 r(42);
  shuffle(a, r);
  EXPECT_EQ(a, (std::vector<int>{0, 9, 5, 8, 6, 4, 7, 2, 1, 3}));
  // Reshuffling continues the same generator (the tuner's mini-batch order does this).
  std::vector<int> b(10);
  std::iota(b.begin(), b.end(), 0);
  shuffle(b, r);
  EXPECT_EQ(b, (std::vector<int>{0, 9, 3, 2, 5, 7, 1, 6, 8, 4}));

  std::vector<int> c(20);
  std::iota(c.begin(), c.end(), 0);
  SplitMix64 r7(7);
  shuffle(c, r7);
  EXPECT_EQ(c, (std::vector<int>{4, 1, 2, 15, 16, 18, 9, 6, 13, 3, 8, 5, 19, 12, 17, 10, 11, 0, 14, 7}));
}

TEST(SplitMix64, ShuffleIsAPermutationAndHandlesTinyLists) {
  std::vector<int> empty, one{5};
  SplitMix64 r(1);
  shuffle(empty, r);
  shuffle(one, r);
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(one, std::vector<int>{5});
  std::vector<int> big(1000);
  std::iota(big.begin(), big.end(), 0);
  shuffle(big, r);
  std::vector<int> sorted = big;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  int fixed_points = 0;
  for (int i = 0; i < 1000; ++i) fixed_points += big[i] == i;
  EXPECT_LT(fixed_points, 10);  // a real shuffle, not the identity
}

}  // namespace
}  // namespace omni
