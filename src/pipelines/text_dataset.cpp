#include "pipelines/text_dataset.h"

#include <nlohmann/json.hpp>

#include <string_view>

#include "core/error.h"
#include "io/file_util.h"
#include "io/tokenizers/utf8.h"

namespace omni {
namespace {

bool is_blank(std::string_view line) { return line.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos; }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Calls fn(line, 1-based line number) for every line, without its '\n' or a trailing '\r'.
template <class Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  size_t start = 0;
  int64_t number = 1;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(line, number);
    start = end + 1;
    ++number;
  }
}

bool looks_like_jsonl(const std::string& path, std::string_view text) {
  if (ends_with(path, ".jsonl") || ends_with(path, ".json")) return true;
  bool json = false, decided = false;
  for_each_line(text, [&](std::string_view line, int64_t) {
    if (decided || is_blank(line)) return;
    const size_t first = line.find_first_not_of(" \t");
    json = line[first] == '{';
    decided = true;
  });
  return json;
}

std::string parse_jsonl_record(const std::string& path, std::string_view line, int64_t number) {
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    OMNI_FAIL("dataset ", path, " line ", number, ": not valid JSON (", e.what(), ")");
  }
  OMNI_CHECK(record.is_object(), "dataset ", path, " line ", number, ": expected a JSON object with a \"text\" field, found ",
             record.type_name());
  const auto it = record.find("text");
  OMNI_CHECK(it != record.end(), "dataset ", path, " line ", number, ": the object has no \"text\" field");
  OMNI_CHECK(it->is_string(), "dataset ", path, " line ", number, ": \"text\" must be a string, found ", it->type_name());
  return it->get<std::string>();
}

std::vector<int32_t> parse_token_window(const std::string& path, std::string_view line, int64_t number,
                                        int64_t seqlen, int64_t vocab_size) {
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    OMNI_FAIL("token windows ", path, " line ", number, ": not valid JSON (", e.what(), ")");
  }
  OMNI_CHECK(record.is_object(), "token windows ", path, " line ", number,
             ": expected a JSON object with an \"input_ids\" array, found ", record.type_name());
  const auto it = record.find("input_ids");
  OMNI_CHECK(it != record.end() && it->is_array(), "token windows ", path, " line ", number,
             ": the object has no \"input_ids\" array");
  OMNI_CHECK(static_cast<int64_t>(it->size()) == seqlen, "token windows ", path, " line ", number, ": ", it->size(),
             " ids, but --seqlen is ", seqlen, " (every window must have exactly seqlen ids)");
  std::vector<int32_t> ids;
  ids.reserve(it->size());
  for (size_t k = 0; k < it->size(); ++k) {
    const nlohmann::json& v = (*it)[k];
    OMNI_CHECK(v.is_number_integer(), "token windows ", path, " line ", number, ": input_ids[", k,
               "] is not an integer (", v.dump(), ")");
    const int64_t id = v.get<int64_t>();
    OMNI_CHECK(id >= 0 && id < vocab_size, "token windows ", path, " line ", number, ": input_ids[", k, "] = ", id,
               " is outside the vocabulary [0, ", vocab_size, ")");
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

}  // namespace

std::vector<std::vector<int32_t>> read_token_windows(const std::string& path, int64_t seqlen, int64_t vocab_size) {
  OMNI_CHECK(seqlen > 0, "token windows ", path, ": seqlen must be positive, got ", seqlen);
  const std::string text = read_text_file(path);
  std::vector<std::vector<int32_t>> windows;
  for_each_line(text, [&](std::string_view line, int64_t number) {
    if (!is_blank(line)) windows.push_back(parse_token_window(path, line, number, seqlen, vocab_size));
  });
  OMNI_CHECK(!windows.empty(), "token windows ", path, " has no windows; expected one {\"input_ids\": [...]} per line");
  return windows;
}

std::vector<std::string> read_text_dataset(const std::string& path) {
  const std::string text = read_text_file(path);
  const bool jsonl = looks_like_jsonl(path, text);
  std::vector<std::string> samples;
  for_each_line(text, [&](std::string_view line, int64_t number) {
    if (is_blank(line)) return;
    if (!jsonl) {
      const size_t bad = utf8::first_invalid(line);
      OMNI_CHECK(bad == line.size(), "dataset ", path, " line ", number, ": not valid UTF-8 at byte ", bad + 1,
                 " of the line (the dataset must be UTF-8 text)");
      samples.emplace_back(line);
      return;
    }
    std::string sample = parse_jsonl_record(path, line, number);
    if (!is_blank(sample)) samples.push_back(std::move(sample));
  });
  OMNI_CHECK(!samples.empty(), "dataset ", path, " has no samples (", jsonl ? "JSONL" : "plain text",
             ", blank lines skipped); expected one sample per line");
  return samples;
}

}  // namespace omni
