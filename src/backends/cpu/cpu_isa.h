// Which SIMD code path the CPU kernels take. Every path the compiler could build is kept selectable at run
// time so that tests can check each one on the machine they run on (the fastest one is the default).
#pragma once

#include <string_view>
#include <vector>

// What the compiler can build here (-march=native on the build machine decides).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define OMNI_CPU_HAVE_AVX512 1
#endif
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define OMNI_CPU_HAVE_AVX2 1
#endif

namespace omni {

enum class CpuIsa {
  Scalar,      // plain C++, always built
  Avx2,        // AVX2 + FMA, 8 f32 lanes
  Avx512,      // AVX-512 F/BW/VL, 16 f32 lanes
};

// Paths compiled into this binary, slowest first.
const std::vector<CpuIsa>& compiled_cpu_isas();
// The path kernels use now; starts as the fastest compiled one.
CpuIsa active_cpu_isa();
// Selects a compiled path (tests); throws omni::Error for one that was not compiled.
void set_active_cpu_isa(CpuIsa isa);
std::string_view cpu_isa_name(CpuIsa isa);

}  // namespace omni
