// The machine's streaming read bandwidth, measured the way the memory-bound kernels read: every thread streams
// its share of a buffer much larger than the caches. The denominator of the CPU rooflines (`omniround bench`,
// bench/matmul_bench.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace omni {

// Reads all of buf[0, bytes) once with the thread pool; returns a checksum so the reads cannot be elided.
uint64_t cpu_read_pass(const uint64_t* buf, size_t bytes);

// Best of `passes` timed passes over a freshly written buffer of `bytes`, in bytes per second.
double measure_cpu_read_bandwidth(size_t bytes = size_t{1} << 30, int passes = 5);

}  // namespace omni
