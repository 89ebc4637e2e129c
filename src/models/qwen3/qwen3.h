// Qwen3ForCausalLM: a Llama-family decoder with per-head RMSNorm on q and k before RoPE, no biases (unless
// attention_bias), SiLU-gated MLP. Hugging Face names (nn/decoder_spec.h defaults).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "nn/decoder_spec.h"

namespace omni {

DecoderSpec parse_qwen3_config(const nlohmann::json& config, const std::string& file);

}  // namespace omni
