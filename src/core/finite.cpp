#include "core/finite.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace omni {
namespace {

// The exponent field all ones is NaN or Inf in every IEEE-style format. Scanned in blocks with an OR reduction
// (which the compiler vectorises); the element is searched for only in a block that has one.
template <class Word>
int64_t first_all_ones_exponent(const Word* p, int64_t n, Word mask) {
  constexpr int64_t kBlock = 4096;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = b + kBlock < n ? b + kBlock : n;
    bool any = false;
    for (int64_t i = b; i < e; ++i) any |= (p[i] & mask) == mask;
    if (!any) continue;
    for (int64_t i = b; i < e; ++i)
      if ((p[i] & mask) == mask) return i;
  }
  return -1;
}

float value_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::F32: return t.data<float>()[i];
    case DType::BF16: return bf16_to_f32(t.data<uint16_t>()[i]);
    case DType::F16: return f16_to_f32(t.data<uint16_t>()[i]);
    default: return 0.f;
  }
}

}  // namespace

int64_t first_non_finite(const Tensor& t) {
  OMNI_CHECK(t.device().is_cpu(), "first_non_finite: a CPU tensor is needed");
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::F32: return first_all_ones_exponent(static_cast<const uint32_t*>(t.raw()), n, uint32_t{0x7f800000u});
    case DType::BF16: return first_all_ones_exponent(static_cast<const uint16_t*>(t.raw()), n, uint16_t{0x7f80u});
    case DType::F16: return first_all_ones_exponent(static_cast<const uint16_t*>(t.raw()), n, uint16_t{0x7c00u});
    default: return -1;
  }
}

void require_finite(const Tensor& t, std::string_view what) {
  const int64_t i = first_non_finite(t);
  if (i < 0) return;
  OMNI_FAIL(what, " holds NaN or Inf (element ", i, " of ", shape_str(t.shape()), " is ", value_at(t, i),
            "); omniround refuses non-finite weights");
}

}  // namespace omni
