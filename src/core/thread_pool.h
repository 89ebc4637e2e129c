// A fixed pool of worker threads and a blocking parallel_for. One global pool, sized to the machine unless
// set_num_threads() says otherwise (the CLI's --threads).
#pragma once

#include <cstdint>
#include <functional>

namespace omni {

int num_threads();
// n <= 0: hardware concurrency. More than kMaxThreadsPerCore × the cores is capped there (thousands of threads
// only starve the machine). Returns the count the pool will use.
inline constexpr int kMaxThreadsPerCore = 4;
int set_num_threads(int n);

// Calls fn(lo, hi) on disjoint chunks covering [begin, end), each at least `grain` long (except the last),
// across the pool; returns when all are done. Exceptions thrown by fn are rethrown in the caller.
// Nested calls from inside a worker run serially.
void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace omni
