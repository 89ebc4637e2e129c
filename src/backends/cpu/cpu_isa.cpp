#include "backends/cpu/cpu_isa.h"

#include <algorithm>
#include <atomic>

#include "core/error.h"

namespace omni {
namespace {

std::vector<CpuIsa> build_compiled_list() {
  std::vector<CpuIsa> isas{CpuIsa::Scalar};
#if defined(OMNI_CPU_HAVE_AVX2)
  isas.push_back(CpuIsa::Avx2);
#endif
#if defined(OMNI_CPU_HAVE_AVX512)
  isas.push_back(CpuIsa::Avx512);
#endif
  return isas;
}

std::atomic<CpuIsa>& active() {
  static std::atomic<CpuIsa> isa{compiled_cpu_isas().back()};
  return isa;
}

}  // namespace

const std::vector<CpuIsa>& compiled_cpu_isas() {
  static const std::vector<CpuIsa> isas = build_compiled_list();
  return isas;
}

CpuIsa active_cpu_isa() { return active().load(std::memory_order_relaxed); }

void set_active_cpu_isa(CpuIsa isa) {
  const auto& isas = compiled_cpu_isas();
  OMNI_CHECK(std::find(isas.begin(), isas.end(), isa) != isas.end(), "CPU code path ", cpu_isa_name(isa),
             " was not compiled into this binary (compiled: best is ", cpu_isa_name(isas.back()), ")");
  active().store(isa, std::memory_order_relaxed);
}

std::string_view cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Scalar: return "scalar";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Avx512: return "avx512";
  }
  return "unknown";
}

}  // namespace omni
