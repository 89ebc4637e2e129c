// One human-readable line describing a checkpoint's quantization (for `inspect` and load logs).
#pragma once

#include <string>

#include "quant/quant_config.h"

namespace omni {

// e.g. "auto-round W4 group 128 sym, packing auto_round:auto_gptq, blocks model.layers, 1 extra_config entry"
std::string describe_quantization(const QuantizationConfig& cfg);

}  // namespace omni
