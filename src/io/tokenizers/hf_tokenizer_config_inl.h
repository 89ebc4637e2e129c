// Template part of hf_tokenizer_config.h.
#pragma once

#include <unordered_set>
#include <utility>

#include "core/error.h"

namespace omni {

template <class ModelId>
nlohmann::json merge_added_tokens(const nlohmann::json& from_tokenizer_json, const std::vector<nlohmann::json>& from_config,
                                  const std::vector<std::pair<std::string, std::string>>& specials,
                                  const ModelId& model_id, const std::string& source,
                                  const std::string& config_path) {
  nlohmann::json out = nlohmann::json::array();
  std::unordered_set<std::string> seen;
  const auto add = [&](nlohmann::json entry) {
    const std::string content = entry["content"].get<std::string>();
    if (!seen.insert(content).second) return;
    if (const auto id = model_id(content)) entry["id"] = *id;
    out.push_back(std::move(entry));
  };
  if (from_tokenizer_json.is_array()) {
    for (size_t i = 0; i < from_tokenizer_json.size(); ++i) {
      const nlohmann::json& e = from_tokenizer_json[i];
      OMNI_CHECK(e.is_object() && e.contains("content") && e["content"].is_string(), source, ": field added_tokens[",
                 i, "] must be an object with a string \"content\", found ", e.dump());
      add(e);
    }
  } else {
    OMNI_CHECK(from_tokenizer_json.is_null(), source, ": field added_tokens must be an array, found ",
               from_tokenizer_json.type_name());
  }
  for (const auto& e : from_config) add(e);
  for (const auto& [key, s] : specials) {
    if (seen.count(s)) continue;
    const auto id = model_id(s);
    OMNI_CHECK(id, config_path, ": field ", key, ": '", s, "' is neither in the vocabulary of ", source,
               " nor an added token");
    add({{"id", *id}, {"content", s}, {"special", true}, {"normalized", false}, {"lstrip", false}, {"rstrip", false}});
  }
  return out;
}

}  // namespace omni
