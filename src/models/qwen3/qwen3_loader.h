// Reads Qwen3 weights from a checkpoint directory into backend-prepared form.
#pragma once

#include <string>

#include "backends/backend.h"
#include "io/model_config.h"
#include "models/qwen3/qwen3_model.h"

namespace omni {

// Every tensor is checked against the config (name present, shape, dtype) with errors naming the tensor.
// Linear layers stored as qweight/qzeros/scales(/g_idx) are read as W4A16 per the checkpoint's
// quantization_config; the others as dense 16/32-bit weights.
Qwen3Weights load_qwen3_weights(const std::string& dir, const Qwen3Config& config, Backend& backend,
                                LoadReport& report);

}  // namespace omni
