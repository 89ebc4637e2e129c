#include "io/tokenizers/clip_tokenizer.h"

#include "core/error.h"
#include "io/file_util.h"
#include "io/json_fields.h"
#include "io/tokenizers/hf_tokenizer_config.h"
#include "io/tokenizers/tokenizer_fields.h"

namespace omni {

using nlohmann::json;

namespace {

constexpr const char* kClipPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";

// merges.txt: one "a b" pair a line; lines starting with "#version" are skipped (as HF's BPE file reader does).
// Each pair and its result must be tokens of `vocab` (checked here so the error can name the line).
json read_merges_txt(const std::string& path, const json& vocab) {
  const std::string text = read_text_file(path);
  json merges = json::array();
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("#version", 0) == 0) continue;
    const size_t space = line.find(' ');
    OMNI_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                   line.find(' ', space + 1) == std::string::npos,
               path, ": line ", line_no, " must be two tokens separated by one space, found \"", line, "\"");
    const std::string a = line.substr(0, space), b = line.substr(space + 1);
    for (const std::string& t : {a, b, a + b})
      OMNI_CHECK(vocab.contains(t), path, ": line ", line_no, " (\"", line, "\"): '", t, "' is not in vocab.json");
    merges.push_back(std::move(line));
  }
  return merges;
}

}  // namespace

ClipTokenizer ClipTokenizer::from_dir(const std::string& dir) {
  const HfTokenizerConfig config = HfTokenizerConfig::from_dir(dir);
  const std::string json_path = dir + "/tokenizer.json";
  json vocab, merges, file_added;
  std::string source;
  if (file_exists(json_path)) {
    source = json_path;
    json root = read_json_file(json_path);
    const TokenizerFields f(json_path);
    OMNI_CHECK(root.is_object(), json_path, ": the top level must be a JSON object, found ", root.type_name());
    const json& model = f.object(root, "", "model");
    const std::string type = f.string_or(model, "model", "type", "BPE");
    OMNI_CHECK(type == "BPE", json_path, ": field model.type is '", type, "', but CLIP's tokenizer is BPE");
    vocab = f.object(model, "model", "vocab");
    merges = f.array(model, "model", "merges");
    if (const auto it = root.find("added_tokens"); it != root.end()) file_added = *it;
  } else {
    const std::string vocab_path = dir + "/vocab.json", merges_path = dir + "/merges.txt";
    OMNI_CHECK(file_exists(vocab_path), dir, ": a CLIP tokenizer folder needs tokenizer.json or vocab.json + merges.txt");
    source = vocab_path;
    vocab = read_json_file(vocab_path);
    OMNI_CHECK(vocab.is_object(), vocab_path, ": the top level must be an object of token -> id, found ",
               vocab.type_name());
    merges = read_merges_txt(merges_path, vocab);
  }

  const std::string bos = config.token("bos_token", "<|startoftext|>");
  const std::string eos = config.token("eos_token", "<|endoftext|>");
  const std::string unk = config.token("unk_token", "<|endoftext|>");
  const std::string pad = config.token("pad_token", "<|endoftext|>");
  const auto model_id = [&](const std::string& token) -> std::optional<int32_t> {
    const auto it = vocab.find(token);
    if (it == vocab.end() || !it->is_number_integer()) return std::nullopt;
    return static_cast<int32_t>(it->get<int64_t>());
  };
  json root = json::object();
  root["normalizer"] = {{"type", "Sequence"},
                        {"normalizers", json::array({{{"type", "NFC"}},
                                                     {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}},
                                                     {{"type", "Lowercase"}}})}};
  root["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"}, {"pattern", {{"Regex", kClipPattern}}}, {"behavior", "Removed"}, {"invert", true}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}})}};
  OMNI_CHECK(model_id(unk), source, ": the unk_token '", unk, "' (", config.config_path(),
             ") is not in the vocabulary");
  root["model"] = {{"type", "BPE"},           {"vocab", std::move(vocab)},           {"merges", std::move(merges)},
                   {"unk_token", unk},        {"continuing_subword_prefix", ""},     {"end_of_word_suffix", "</w>"},
                   {"fuse_unk", false},       {"byte_fallback", false}};
  root["added_tokens"] = merge_added_tokens(
      file_added, config.added_tokens_decoder(),
      {{"bos_token", bos}, {"eos_token", eos}, {"unk_token", unk}, {"pad_token", pad}}, model_id, source,
      config.config_path());
  const auto special_id = [&](const std::string& token, const char* key) {
    for (const json& t : root["added_tokens"])
      if (t["content"] == token && t.contains("id") && t["id"].is_number_integer())
        return static_cast<int32_t>(t["id"].get<int64_t>());
    OMNI_FAIL(config.config_path(), ": field ", key, ": '", token, "' is not a token of ", source);
  };
  const int32_t bos_id = special_id(bos, "bos_token"), eos_id = special_id(eos, "eos_token");
  const int32_t pad_id = special_id(pad, "pad_token");
  root["post_processor"] = {{"type", "RobertaProcessing"}, {"cls", json::array({bos, bos_id})},
                            {"sep", json::array({eos, eos_id})}};
  const int64_t max_length = config.integer("model_max_length", 77, 1);
  OMNI_CHECK(max_length >= 2 && max_length <= (1 << 20), config.config_path(), ": field model_max_length = ",
             max_length, " is not a usable CLIP length (2 .. 1048576)");
  return ClipTokenizer(TokenizerPipeline::from_json(root, source), static_cast<size_t>(max_length), bos_id, eos_id,
                       pad_id);
}

PaddedIds ClipTokenizer::encode_padded(std::string_view text, size_t max_length) const {
  return pipeline_.encode_padded(text, max_length, pad_id_);
}

std::vector<int32_t> ClipTokenizer::encode(std::string_view text) const { return pipeline_.encode_with_specials(text); }

}  // namespace omni
