// Reading JSON files (config.json and friends) with errors that name the file and the field: a missing field, a
// wrong type or an out-of-range value is reported as "FILE: field "NAME" must be ..., found ...". Architecture
// config parsers (models/<arch>/) are written with these, so model code never touches raw JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace omni {

// Parses JSON text (a file's contents); `source` (the file) is named in errors. Every reader of a JSON input
// parses through one of these, so what counts as valid JSON is decided in one place: nesting deeper than 512
// levels is refused too (quoting such a value in an error message would overflow the stack).
nlohmann::json parse_json_text(std::string_view text, const std::string& source);
nlohmann::ordered_json parse_ordered_json_text(std::string_view text, const std::string& source);  // key order kept
// Reads a JSON file with errors naming the file.
nlohmann::json read_json_file(const std::string& path);

class FieldReader {
 public:
  FieldReader(const nlohmann::json& j, std::string file);

  const std::string& file() const { return file_; }
  const nlohmann::json& json() const { return j_; }
  bool has(const char* key) const;  // present and not null
  const nlohmann::json& required(const char* key) const;
  int64_t positive_int(const char* key) const;
  double positive_number(const nlohmann::json& v, const char* key) const;
  bool boolean(const char* key, bool fallback) const;
  std::string string_or(const char* key, const std::string& fallback) const;
  // A token id or a list of them (eos_token_id may be either), each in [0, inf).
  std::vector<int32_t> token_ids(const char* key) const;

 private:
  const nlohmann::json& j_;
  std::string file_;
};

}  // namespace omni
