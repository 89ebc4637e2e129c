// Elementwise f32 ops of the transformer block.
#pragma once

#include <cstdint>

namespace omni {

// y = silu(gate) · up = gate / (1 + exp(−gate)) · up. y may alias gate or up.
void silu_mul_forward(float* y, const float* gate, const float* up, int64_t n);
// y = a + b. y may alias a or b.
void add_forward(float* y, const float* a, const float* b, int64_t n);

}  // namespace omni
