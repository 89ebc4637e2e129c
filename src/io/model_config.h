// config.json -> a typed architecture config. Architectures are data: one struct per family, filled and checked
// here, so model code never touches JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace omni {

struct Qwen3Config {
  std::string architecture;  // "Qwen3ForCausalLM"
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
  bool attention_bias = false;
  std::string torch_dtype;           // as declared ("bfloat16", ...), informational
  std::vector<int32_t> eos_token_ids;
  int32_t bos_token_id = -1;
};

// Architectures this build can run; used in "unsupported architecture" errors.
const std::vector<std::string>& supported_architectures();

// Reads and validates `dir/config.json`. Errors name the file and the field (missing, wrong type, out of range,
// unsupported architecture or feature).
Qwen3Config load_qwen3_config(const std::string& dir);
Qwen3Config parse_qwen3_config(const nlohmann::json& j, const std::string& file_name);

// Reads a JSON file with errors naming the file.
nlohmann::json read_json_file(const std::string& path);

}  // namespace omni
