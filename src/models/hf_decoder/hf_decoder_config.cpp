#include "models/hf_decoder/hf_decoder_config.h"

#include "core/error.h"

namespace omni {

void read_hf_decoder_fields(const FieldReader& r, DecoderSpec& c) {
  const std::string& file = r.file();
  const nlohmann::json& j = r.json();
  c.vocab_size = r.positive_int("vocab_size");
  c.hidden_size = r.positive_int("hidden_size");
  c.intermediate_size = r.positive_int("intermediate_size");
  c.num_hidden_layers = r.positive_int("num_hidden_layers");
  c.num_attention_heads = r.positive_int("num_attention_heads");
  c.num_key_value_heads = r.has("num_key_value_heads") ? r.positive_int("num_key_value_heads") : c.num_attention_heads;
  c.head_dim = r.has("head_dim") ? r.positive_int("head_dim") : c.hidden_size / c.num_attention_heads;
  c.max_position_embeddings = r.positive_int("max_position_embeddings");
  c.rms_norm_eps = r.positive_number(r.required("rms_norm_eps"), "rms_norm_eps");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);

  // transformers >= 5 nests the rotary settings in "rope_parameters"; older files have top-level rope_theta and
  // rope_scaling. Only plain (unscaled) RoPE is implemented.
  if (r.has("rope_parameters")) {
    const auto& rp = j.at("rope_parameters");
    OMNI_CHECK(rp.is_object(), file, ": field \"rope_parameters\" must be an object");
    OMNI_CHECK(rp.contains("rope_theta"), file, ": missing required field \"rope_parameters.rope_theta\"");
    c.rope_theta = r.positive_number(rp.at("rope_theta"), "rope_parameters.rope_theta");
    const std::string type = rp.value("rope_type", "default");
    OMNI_CHECK(type == "default", file, ": rope_parameters.rope_type \"", type,
               "\" is not supported (only \"default\")");
  } else {
    c.rope_theta = r.positive_number(r.required("rope_theta"), "rope_theta");
    OMNI_CHECK(!r.has("rope_scaling"), file, ": field \"rope_scaling\" is not supported yet, found ",
               j.at("rope_scaling").dump());
  }
  // The Llama-family block computes SiLU-gated MLPs; another activation would run as SiLU and give wrong numbers.
  const std::string act = r.string_or("hidden_act", "silu");
  OMNI_CHECK(act == "silu", file, ": hidden_act \"", act, "\" is not supported (this decoder computes silu)");
  OMNI_CHECK(!r.boolean("use_sliding_window", false), file,
             ": \"use_sliding_window\": true is not supported (full attention only)");

  OMNI_CHECK(c.num_attention_heads % c.num_key_value_heads == 0, file, ": num_attention_heads (",
             c.num_attention_heads, ") must be a multiple of num_key_value_heads (", c.num_key_value_heads, ")");
  OMNI_CHECK(c.head_dim % 2 == 0, file, ": head_dim must be even for RoPE, found ", c.head_dim);

  c.torch_dtype = r.string_or("dtype", r.string_or("torch_dtype", ""));
  if (r.has("eos_token_id")) c.eos_token_ids = r.token_ids("eos_token_id");
  if (r.has("bos_token_id")) {
    const std::vector<int32_t> bos = r.token_ids("bos_token_id");
    OMNI_CHECK(!bos.empty(), file, ": field \"bos_token_id\" is an empty list");
    c.bos_token_id = bos[0];
  }
  for (int32_t id : c.eos_token_ids)
    OMNI_CHECK(id < c.vocab_size, file, ": eos_token_id ", id, " is outside the vocabulary (", c.vocab_size, ")");
}

}  // namespace omni
