// Qwen2ForCausalLM: a Llama-family decoder with biases on the q, k and v projections (always: the config has no
// field for it), no q/k norm, SiLU-gated MLP. Hugging Face names (nn/decoder_spec.h defaults).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "nn/decoder_spec.h"

namespace omni {

DecoderSpec parse_qwen2_config(const nlohmann::json& config, const std::string& file);

}  // namespace omni
