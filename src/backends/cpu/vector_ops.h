// Small f32 vector primitives shared by the CPU kernels (attention's inner loops). Each follows
// active_cpu_isa().
#pragma once

#include <cstdint>

namespace omni {

// Σ a[i]·b[i] with f32 accumulation.
float dot_f32(const float* a, const float* b, int64_t n);
// y[i] += alpha · x[i].
void axpy_f32(float* y, float alpha, const float* x, int64_t n);

}  // namespace omni
