#include "io/json_fields.h"

#include "core/error.h"
#include "io/file_util.h"

namespace omni {

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    OMNI_FAIL(path, ": invalid JSON: ", e.what());
  }
}

FieldReader::FieldReader(const nlohmann::json& j, std::string file) : j_(j), file_(std::move(file)) {
  OMNI_CHECK(j.is_object(), file_, ": config must be a JSON object");
}

bool FieldReader::has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

const nlohmann::json& FieldReader::required(const char* key) const {
  OMNI_CHECK(has(key), file_, ": missing required field \"", key, "\"");
  return j_.at(key);
}

int64_t FieldReader::positive_int(const char* key) const {
  const auto& v = required(key);
  OMNI_CHECK(v.is_number_integer(), file_, ": field \"", key, "\" must be an integer, found ", v.dump());
  const int64_t x = v.get<int64_t>();
  OMNI_CHECK(x > 0, file_, ": field \"", key, "\" must be positive, found ", x);
  return x;
}

double FieldReader::positive_number(const nlohmann::json& v, const char* key) const {
  OMNI_CHECK(v.is_number(), file_, ": field \"", key, "\" must be a number, found ", v.dump());
  const double x = v.get<double>();
  OMNI_CHECK(x > 0, file_, ": field \"", key, "\" must be positive, found ", x);
  return x;
}

bool FieldReader::boolean(const char* key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = j_.at(key);
  OMNI_CHECK(v.is_boolean(), file_, ": field \"", key, "\" must be true or false, found ", v.dump());
  return v.get<bool>();
}

std::string FieldReader::string_or(const char* key, const std::string& fallback) const {
  return has(key) && j_.at(key).is_string() ? j_.at(key).get<std::string>() : fallback;
}

std::vector<int32_t> FieldReader::token_ids(const char* key) const {
  const nlohmann::json& v = required(key);
  std::vector<int32_t> ids;
  auto add = [&](const nlohmann::json& x) {
    OMNI_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() <= INT32_MAX, file_, ": field \"",
               key, "\" must hold non-negative token ids, found ", x.dump());
    ids.push_back(x.get<int32_t>());
  };
  if (v.is_array()) {
    for (const auto& x : v) add(x);
  } else {
    add(v);
  }
  return ids;
}

}  // namespace omni
