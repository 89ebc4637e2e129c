// Checked access to the fields of tokenizer files (tokenizer.json, tokenizer_config.json): errors name the file
// and the dotted field path ("model.merges[3]"). Shared by every tokenizer loader of this folder.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace omni {

class TokenizerFields {
 public:
  using json = nlohmann::json;
  explicit TokenizerFields(std::string file) : file_(std::move(file)) {}

  const json& object(const json& parent, const std::string& path, const char* key) const {
    const json& v = required(parent, path, key);
    OMNI_CHECK(v.is_object(), file_, ": field ", join(path, key), " must be an object, found ", v.type_name());
    return v;
  }
  const json& array(const json& parent, const std::string& path, const char* key) const {
    const json& v = required(parent, path, key);
    OMNI_CHECK(v.is_array(), file_, ": field ", join(path, key), " must be an array, found ", v.type_name());
    return v;
  }
  const json& required(const json& parent, const std::string& path, const char* key) const {
    OMNI_CHECK(parent.is_object(), file_, ": field ", path.empty() ? "(top level)" : path,
               " must be an object, found ", parent.type_name());
    const auto it = parent.find(key);
    OMNI_CHECK(it != parent.end(), file_, ": missing field ", join(path, key));
    return *it;
  }
  std::string string(const json& parent, const std::string& path, const char* key) const {
    const json& v = required(parent, path, key);
    OMNI_CHECK(v.is_string(), file_, ": field ", join(path, key), " must be a string, found ", v.dump());
    return v.get<std::string>();
  }
  std::string string_or(const json& parent, const std::string& path, const char* key,
                        const std::string& fallback) const {
    const auto it = parent.find(key);
    if (it == parent.end() || it->is_null()) return fallback;
    return string(parent, path, key);
  }
  bool boolean(const json& parent, const std::string& path, const char* key, bool fallback) const {
    const auto it = parent.find(key);
    if (it == parent.end() || it->is_null()) return fallback;
    OMNI_CHECK(it->is_boolean(), file_, ": field ", join(path, key), " must be true or false, found ", it->dump());
    return it->get<bool>();
  }
  int32_t token_id(const json& v, const std::string& field) const {
    OMNI_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < (int64_t{1} << 30), file_,
               ": field ", field, " must be a token id (a non-negative integer), found ", v.dump());
    return static_cast<int32_t>(v.get<int64_t>());
  }
  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

}  // namespace omni
