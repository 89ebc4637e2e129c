#include "io/json_fields.h"

#include "core/error.h"
#include "io/file_util.h"

namespace omni {

namespace {

// nlohmann parses iteratively but dumps, copies and compares recursively: 100 000 nested brackets parse, then
// overflow the stack in the first error message that quotes the value (issue 7 fuzzing). No config or tokenizer
// nests more than a handful of levels.
constexpr int kMaxJsonDepth = 512;

// Counts bracket depth outside strings; malformed text is left to the parser's own error.
void check_nesting(std::string_view text, const std::string& source) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      OMNI_CHECK(++depth <= kMaxJsonDepth, source, ": invalid JSON: nested deeper than ", kMaxJsonDepth,
                 " levels at byte ", i);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

template <typename Json>
Json parse_as(std::string_view text, const std::string& source) {
  check_nesting(text, source);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    OMNI_FAIL(source, ": invalid JSON: ", e.what());
  }
}

}  // namespace

nlohmann::json parse_json_text(std::string_view text, const std::string& source) {
  return parse_as<nlohmann::json>(text, source);
}

nlohmann::ordered_json parse_ordered_json_text(std::string_view text, const std::string& source) {
  return parse_as<nlohmann::ordered_json>(text, source);
}

nlohmann::json read_json_file(const std::string& path) { return parse_json_text(read_text_file(path), path); }

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
