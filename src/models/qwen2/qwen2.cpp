#include "models/qwen2/qwen2.h"

#include "models/hf_decoder/hf_decoder_config.h"

namespace omni {

DecoderSpec parse_qwen2_config(const nlohmann::json& config, const std::string& file) {
  const FieldReader r(config, file);
  DecoderSpec s;
  s.architecture = "Qwen2ForCausalLM";
  read_hf_decoder_fields(r, s);
  s.qkv_bias = true;
  return s;
}

}  // namespace omni
