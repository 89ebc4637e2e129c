// A decoder-only transformer language model described as data (CTranslate2's "spec"): dimensions, which
// Llama-family features it has, and the checkpoint names of every weight. Each models/<arch>/ fills one from
// its config.json; nn/decoder_block and nn/decoder_lm run any spec, so a Llama-family architecture adds a config
// parser and a registry line, not a forward pass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace omni {

// Checkpoint names. Block-relative names have no layer prefix; block_list + "." + i is layer i's prefix.
struct DecoderNames {
  std::string block_list = "model.layers";
  std::string embed_tokens = "model.embed_tokens.weight";
  std::string final_norm = "model.norm.weight";
  std::string lm_head = "lm_head.weight";
  std::string input_norm = "input_layernorm.weight";
  std::string post_attention_norm = "post_attention_layernorm.weight";
  std::string q_norm = "self_attn.q_norm.weight";
  std::string k_norm = "self_attn.k_norm.weight";
  std::string q_proj = "self_attn.q_proj", k_proj = "self_attn.k_proj", v_proj = "self_attn.v_proj";
  std::string o_proj = "self_attn.o_proj";
  std::string gate_proj = "mlp.gate_proj", up_proj = "mlp.up_proj", down_proj = "mlp.down_proj";

  std::string block_prefix(int64_t layer) const { return block_list + "." + std::to_string(layer); }
};

struct DecoderSpec {
  std::string architecture;  // as in config.json, e.g. "Qwen3ForCausalLM"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 0;
  double rms_norm_eps = 0;
  bool tie_word_embeddings = false;
  bool qk_norm = false;   // per-head RMSNorm of q and k before RoPE (Qwen3)
  bool qkv_bias = false;  // q/k/v projections have a bias (Qwen2; Llama's attention_bias)
  bool o_bias = false;    // o_proj has a bias (Llama's attention_bias)
  std::string torch_dtype;  // as declared ("bfloat16", ...), informational
  std::vector<int32_t> eos_token_ids;
  int32_t bos_token_id = -1;
  DecoderNames names;
};

}  // namespace omni
