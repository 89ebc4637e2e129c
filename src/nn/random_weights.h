// Random weights of a model's real shapes, for benchmarks at full size where no checkpoint is at hand (FLUX.1-dev
// is 12B parameters): dense BF16 values uniform in ±scale, and 4-bit GPTQ-convention weights with random codes,
// the symmetric zero point 8 and positive F16 scales. Deterministic in the seed and the tensor's name, filled in
// parallel. The values mean nothing: they exist to be streamed and multiplied at the real sizes.
#pragma once

#include <cstdint>
#include <string>

#include "backends/linear_weight.h"
#include "core/tensor.h"

namespace omni {

// BF16 [shape], uniform in [−scale, scale] (plus `offset`, for norm weights near 1).
Tensor random_bf16(const Shape& shape, uint64_t seed, const std::string& name, float scale, float offset = 0.f);
// bits-bit weight [out, in] in groups of group_size along in (in % group_size == 0).
GroupedIntWeight random_grouped_int(int64_t in, int64_t out, int bits, int64_t group_size, uint64_t seed,
                                    const std::string& name);

}  // namespace omni
