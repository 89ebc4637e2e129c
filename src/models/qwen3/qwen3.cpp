#include "models/qwen3/qwen3.h"

#include "models/hf_decoder/hf_decoder_config.h"

namespace omni {

DecoderSpec parse_qwen3_config(const nlohmann::json& config, const std::string& file) {
  const FieldReader r(config, file);
  DecoderSpec s;
  s.architecture = "Qwen3ForCausalLM";
  read_hf_decoder_fields(r, s);
  s.qk_norm = true;
  s.qkv_bias = s.o_bias = r.boolean("attention_bias", false);
  return s;
}

}  // namespace omni
