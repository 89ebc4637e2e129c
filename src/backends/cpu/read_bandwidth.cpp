#include "backends/cpu/read_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/simd.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

// Each thread reads its share as kStreams interleaved sequential streams, as the kernels read several weight
// tiles at once; one stream per core leaves the prefetchers short of parallelism and under-reports the peak.
constexpr int64_t kStreams = 4;

uint64_t read_range(const uint64_t* p, int64_t words) {
  const int64_t len = words / kStreams / 8 * 8;  // the last < 32 words of a range are left out
  const uint64_t* s[kStreams];
  for (int64_t i = 0; i < kStreams; ++i) s[i] = p + i * len;
#if defined(OMNI_CPU_HAVE_AVX2)
  if (active_cpu_isa() != CpuIsa::Scalar) {
    __m256i acc[kStreams][2];
    for (auto& a : acc) a[0] = a[1] = _mm256_setzero_si256();
    for (int64_t j = 0; j < len; j += 8)
      for (int64_t i = 0; i < kStreams; ++i) {
        acc[i][0] = _mm256_add_epi64(acc[i][0], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s[i] + j)));
        acc[i][1] = _mm256_add_epi64(acc[i][1], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s[i] + j + 4)));
      }
    __m256i total = _mm256_setzero_si256();
    for (auto& a : acc) total = _mm256_add_epi64(total, _mm256_add_epi64(a[0], a[1]));
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), total);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
  }
#endif
  uint64_t sum[kStreams][8] = {};
  for (int64_t j = 0; j < len; j += 8)
    for (int64_t i = 0; i < kStreams; ++i)
      for (int64_t l = 0; l < 8; ++l) sum[i][l] += s[i][j + l];
  uint64_t total = 0;
  for (auto& row : sum)
    for (uint64_t v : row) total += v;
  return total;
}

}  // namespace

uint64_t cpu_read_pass(const uint64_t* buf, size_t bytes) {
  const int64_t words = static_cast<int64_t>(bytes / sizeof(uint64_t)), chunks = num_threads();
  std::vector<uint64_t> partial(static_cast<size_t>(chunks), 0);
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t lo = words * c / chunks, hi = words * (c + 1) / chunks;
      partial[static_cast<size_t>(c)] = read_range(buf + lo, hi - lo);
    }
  });
  uint64_t total = 0;
  for (uint64_t v : partial) total += v;
  return total;
}

double measure_cpu_read_bandwidth(size_t bytes, int passes) {
  const size_t words = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[words]);  // uninitialised: the first touch is parallel below
  parallel_for(0, static_cast<int64_t>(words), 1 << 20, [&](int64_t a, int64_t b) {
    for (int64_t j = a; j < b; ++j) buf[static_cast<size_t>(j)] = static_cast<uint64_t>(j) * 2654435761u;
  });
  double best = 0.0;
  volatile uint64_t sink = 0;
  for (int i = 0; i < passes; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    sink = sink + cpu_read_pass(buf.get(), words * sizeof(uint64_t));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / s);
  }
  return best;
}

}  // namespace omni
