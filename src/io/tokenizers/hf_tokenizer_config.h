// What transformers reads from a tokenizer folder besides the model files: tokenizer_config.json and
// special_tokens_map.json (special tokens, model_max_length, added_tokens_decoder), and how it assembles the added
// tokens of a class-built tokenizer (CLIPTokenizer, T5Tokenizer in transformers 5.17 rebuild the pipeline and take
// only the vocabulary from the files).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace omni {

class HfTokenizerConfig {
 public:
  // Reads dir/tokenizer_config.json and dir/special_tokens_map.json; both are optional (absent: {}).
  static HfTokenizerConfig from_dir(const std::string& dir);

  // A special token ("eos_token" ...): a string or {"content": ...}, from tokenizer_config.json, else
  // special_tokens_map.json, else `fallback`.
  std::string token(const char* key, const std::string& fallback) const;
  // A list of tokens ("additional_special_tokens"), each a string or {"content": ...}; empty when absent.
  std::vector<std::string> token_list(const char* key) const;
  // An integer field of tokenizer_config.json of at least `min`, or `fallback` when absent; a huge value
  // (transformers' 1e30 for "no limit") reads as 2^30.
  int64_t integer(const char* key, int64_t fallback, int64_t min) const;
  // tokenizer_config.json's "added_tokens_decoder" as tokenizer.json "added_tokens" entries (id, content, flags).
  std::vector<nlohmann::json> added_tokens_decoder() const;
  const std::string& config_path() const { return config_path_; }

 private:
  nlohmann::json config_, special_map_;
  std::string config_path_, special_map_path_;
};

// The "added_tokens" of the class-built tokenizer: every entry of `from_tokenizer_json` (tokenizer.json's own
// list, may be null) and of `from_config`, then the `specials` ({config key, token}) not yet among them as
// special tokens (not normalized, no strip). An entry whose content is in the model vocabulary takes the model's
// id; `model_id` looks it up. Errors name `source` (the vocabulary's file) and `config_path` (a special token
// that is neither in the vocabulary nor an added token).
template <class ModelId>
nlohmann::json merge_added_tokens(const nlohmann::json& from_tokenizer_json, const std::vector<nlohmann::json>& from_config,
                                  const std::vector<std::pair<std::string, std::string>>& specials,
                                  const ModelId& model_id, const std::string& source, const std::string& config_path);

}  // namespace omni

#include "io/tokenizers/hf_tokenizer_config_inl.h"
