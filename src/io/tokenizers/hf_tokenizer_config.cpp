#include "io/tokenizers/hf_tokenizer_config.h"

#include <cmath>

#include "io/file_util.h"
#include "io/json_fields.h"

namespace omni {

using nlohmann::json;

namespace {

json read_optional(const std::string& path) {
  if (!file_exists(path)) return json::object();
  json j = read_json_file(path);
  OMNI_CHECK(j.is_object(), path, ": the top level must be a JSON object, found ", j.type_name());
  return j;
}

// A token given as "text" or {"content": "text", ...}.
std::string token_text(const json& v, const std::string& path, const std::string& field) {
  if (v.is_string()) return v.get<std::string>();
  OMNI_CHECK(v.is_object() && v.contains("content") && v["content"].is_string(), path, ": field ", field,
             " must be a string or an object with \"content\", found ", v.dump());
  return v["content"].get<std::string>();
}

}  // namespace

HfTokenizerConfig HfTokenizerConfig::from_dir(const std::string& dir) {
  HfTokenizerConfig c;
  c.config_path_ = dir + "/tokenizer_config.json";
  c.special_map_path_ = dir + "/special_tokens_map.json";
  c.config_ = read_optional(c.config_path_);
  c.special_map_ = read_optional(c.special_map_path_);
  return c;
}

std::string HfTokenizerConfig::token(const char* key, const std::string& fallback) const {
  if (const auto it = config_.find(key); it != config_.end() && !it->is_null())
    return token_text(*it, config_path_, key);
  if (const auto it = special_map_.find(key); it != special_map_.end() && !it->is_null())
    return token_text(*it, special_map_path_, key);
  return fallback;
}

std::vector<std::string> HfTokenizerConfig::token_list(const char* key) const {
  std::vector<std::string> out;
  for (const auto* src : {&config_, &special_map_}) {
    const auto it = src->find(key);
    if (it == src->end() || it->is_null()) continue;
    const std::string& path = src == &config_ ? config_path_ : special_map_path_;
    OMNI_CHECK(it->is_array(), path, ": field ", key, " must be an array, found ", it->type_name());
    for (size_t i = 0; i < it->size(); ++i) out.push_back(token_text((*it)[i], path, str_cat(key, "[", i, "]")));
    break;  // tokenizer_config.json's list wins
  }
  return out;
}

int64_t HfTokenizerConfig::integer(const char* key, int64_t fallback, int64_t min) const {
  const auto it = config_.find(key);
  if (it == config_.end() || it->is_null()) return fallback;
  // transformers writes "no limit" as a huge number (1e30, past int64): such values read as 2^30.
  constexpr double kHuge = double(int64_t{1} << 30);
  const bool number = it->is_number();
  const double v = number ? it->get<double>() : 0.0;
  OMNI_CHECK(number && v >= double(min) && (v >= kHuge || v == std::floor(v)), config_path_, ": field ", key,
             " must be an integer >= ", min, ", found ", it->dump());
  if (v >= kHuge) return int64_t{1} << 30;
  return it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(v);
}

std::vector<json> HfTokenizerConfig::added_tokens_decoder() const {
  std::vector<json> out;
  const auto it = config_.find("added_tokens_decoder");
  if (it == config_.end() || it->is_null()) return out;
  OMNI_CHECK(it->is_object(), config_path_, ": field added_tokens_decoder must be an object, found ", it->type_name());
  for (const auto& [key, entry] : it->items()) {
    const std::string field = "added_tokens_decoder[\"" + key + "\"]";
    size_t used = 0;
    int64_t id = -1;
    try {
      id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    OMNI_CHECK(used == key.size() && id >= 0 && id < (int64_t{1} << 30), config_path_, ": field ", field,
               ": the key must be a token id");
    json e = json::object();
    e["id"] = id;
    e["content"] = token_text(entry, config_path_, field);
    if (entry.is_object())
      for (const char* flag : {"special", "normalized", "lstrip", "rstrip", "single_word"})
        if (entry.contains(flag)) e[flag] = entry[flag];
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace omni
