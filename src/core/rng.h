// A tiny seeded random generator (splitmix64) and a Fisher–Yates shuffle built on it. Chosen because it is
// trivial to reproduce bit for bit in Python, so the calibration sample order and the tuner's mini-batch order
// of the C++ code can be replayed by the PyTorch reference tools (see the issue-3 shared contract):
//
//   state += 0x9E3779B97F4A7C15; z = state;
//   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31)
//
// all modulo 2^64. The shuffle runs from the end: for i = n−1 down to 1, j = next() % (i + 1), swap(a[i], a[j]).
// (The modulo has a negligible bias for the list sizes we shuffle; it is kept because the reference uses it.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace omni {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// Shuffles `items` in place; the same seed and size always give the same permutation.
template <class T>
void shuffle(std::vector<T>& items, SplitMix64& rng) {
  for (std::size_t i = items.size(); i-- > 1;) {
    const std::size_t j = static_cast<std::size_t>(rng.next() % static_cast<uint64_t>(i + 1));
    using std::swap;
    swap(items[i], items[j]);
  }
}

}  // namespace omni
