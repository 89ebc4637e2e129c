#include "models/hf_decoder/hf_decoder_config.h"

#include <cstdint>

#include "core/error.h"

namespace omni {
namespace {

// Sizes above 2^31 - 1 are refused: no model comes near, and products of two sizes (weight shapes such as
// heads x head_dim) then stay far inside int64 (issue 7 fuzzing: 2^40 x 2^40 overflowed in the block's shapes).
constexpr int64_t kMaxSize = INT32_MAX;

int64_t size_field(const FieldReader& r, const char* key) {
  const int64_t x = r.positive_int(key);
  OMNI_CHECK(x <= kMaxSize, r.file(), ": field \"", key, "\" must be at most ", kMaxSize, ", found ", x);
  return x;
}

}  // namespace

void read_hf_decoder_fields(const FieldReader& r, DecoderSpec& c) {
  const std::string& file = r.file();
  const nlohmann::json& j = r.json();
  c.vocab_size = size_field(r, "vocab_size");
  c.hidden_size = size_field(r, "hidden_size");
  c.intermediate_size = size_field(r, "intermediate_size");
  c.num_hidden_layers = size_field(r, "num_hidden_layers");
  c.num_attention_heads = size_field(r, "num_attention_heads");
  c.num_key_value_heads = r.has("num_key_value_heads") ? size_field(r, "num_key_value_heads") : c.num_attention_heads;
  if (r.has("head_dim")) {
    c.head_dim = size_field(r, "head_dim");
  } else {
    // transformers' default, hidden_size / num_attention_heads, is only a head size when the division is exact
    // (a config with fewer hidden units than heads gave head_dim 0).
    OMNI_CHECK(c.hidden_size % c.num_attention_heads == 0, file, ": there is no \"head_dim\" and hidden_size (",
               c.hidden_size, ") is not a multiple of num_attention_heads (", c.num_attention_heads, ")");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.max_position_embeddings = size_field(r, "max_position_embeddings");
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
