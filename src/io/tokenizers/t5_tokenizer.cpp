#include "io/tokenizers/t5_tokenizer.h"

#include <unordered_map>

#include "core/error.h"
#include "io/file_util.h"
#include "io/json_fields.h"
#include "io/tokenizers/hf_tokenizer_config.h"
#include "io/tokenizers/tokenizer_fields.h"

namespace omni {

using nlohmann::json;

namespace {

// The Precompiled step of a tokenizer.json normalizer (itself, or the first inside a Sequence), or null.
const json* find_precompiled(const json& normalizer) {
  if (!normalizer.is_object()) return nullptr;
  const auto type = normalizer.find("type");
  if (type == normalizer.end() || !type->is_string()) return nullptr;
  if (*type == "Precompiled") return &normalizer;
  if (*type == "Sequence") {
    const auto list = normalizer.find("normalizers");
    if (list != normalizer.end() && list->is_array())
      for (const json& n : *list)
        if (n.is_object() && n.value("type", "") == "Precompiled") return &n;
  }
  return nullptr;
}

}  // namespace

T5Tokenizer T5Tokenizer::from_dir(const std::string& dir) {
  const std::string json_path = dir + "/tokenizer.json";
  if (!file_exists(json_path)) {
    OMNI_CHECK(!file_exists(dir + "/spiece.model"), dir,
               ": the T5 tokenizer needs tokenizer.json; this folder has only spiece.model (SentencePiece's protobuf "
               "is not read). Convert it once with transformers: T5TokenizerFast.from_pretrained(dir)"
               ".save_pretrained(dir)");
    OMNI_FAIL(dir, ": the T5 tokenizer needs tokenizer.json, which this folder lacks");
  }
  const HfTokenizerConfig config = HfTokenizerConfig::from_dir(dir);
  const json file = read_json_file(json_path);
  const TokenizerFields f(json_path);
  OMNI_CHECK(file.is_object(), json_path, ": the top level must be a JSON object, found ", file.type_name());
  const json& model = f.object(file, "", "model");
  const std::string type = f.string(model, "model", "type");
  OMNI_CHECK(type == "Unigram", json_path, ": field model.type is '", type, "', but T5's tokenizer is Unigram");
  const json& vocab = f.array(model, "model", "vocab");
  constexpr int32_t kUnkId = 2;  // T5Tokenizer's Unigram(vocab, unk_id=2)
  OMNI_CHECK(vocab.size() > static_cast<size_t>(kUnkId), json_path, ": field model.vocab has ", vocab.size(),
             " pieces; T5 needs at least <pad>, </s> and <unk> (ids 0, 1, 2)");

  std::unordered_map<std::string, int32_t> piece_ids;  // the last of repeated pieces wins, as in the model
  for (size_t i = 0; i < vocab.size(); ++i)
    if (vocab[i].is_array() && !vocab[i].empty() && vocab[i][0].is_string())
      piece_ids[vocab[i][0].get<std::string>()] = static_cast<int32_t>(i);
  const auto model_id = [&](const std::string& token) -> std::optional<int32_t> {
    const auto it = piece_ids.find(token);
    if (it == piece_ids.end()) return std::nullopt;
    return it->second;
  };

  json root = json::object();
  const auto normalizer = file.find("normalizer");
  if (const json* pre = normalizer == file.end() ? nullptr : find_precompiled(*normalizer)) {
    root["normalizer"] = *pre;
  } else if (normalizer != file.end() && !normalizer->is_null()) {
    OMNI_CHECK(normalizer->is_object(), json_path, ": field normalizer must be an object or null, found ",
               normalizer->type_name());
  }
  root["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers", json::array({{{"type", "WhitespaceSplit"}},
                                                          {{"type", "Metaspace"}, {"replacement", "\u2581"},
                                                           {"prepend_scheme", "always"}, {"split", true}}})}};
  root["model"] = {{"type", "Unigram"}, {"vocab", vocab}, {"unk_id", kUnkId}, {"byte_fallback", false}};

  const std::string eos = config.token("eos_token", "</s>");
  const std::string unk = config.token("unk_token", "<unk>");
  const std::string pad = config.token("pad_token", "<pad>");
  std::vector<std::pair<std::string, std::string>> specials = {{"eos_token", eos}, {"unk_token", unk},
                                                                {"pad_token", pad}};
  for (const char* key : {"additional_special_tokens", "extra_special_tokens"})
    for (const std::string& t : config.token_list(key)) specials.emplace_back(key, t);
  const int64_t extra_ids = config.integer("extra_ids", 100, 0);
  for (int64_t i = 0; i < extra_ids; ++i) {
    const std::string t = str_cat("<extra_id_", i, ">");
    if (model_id(t)) specials.emplace_back("extra_ids", t);  // absent from a custom vocabulary: not added
  }
  const auto added = file.find("added_tokens");
  root["added_tokens"] = merge_added_tokens(added == file.end() ? json() : *added, config.added_tokens_decoder(),
                                            specials, model_id, json_path, config.config_path());
  const auto special_id = [&](const std::string& token, const char* key) {
    for (const json& t : root["added_tokens"])
      if (t["content"] == token && t.contains("id") && t["id"].is_number_integer())
        return static_cast<int32_t>(t["id"].get<int64_t>());
    OMNI_FAIL(config.config_path(), ": field ", key, ": '", token, "' is not a token of ", json_path);
  };
  const int32_t eos_id = special_id(eos, "eos_token"), pad_id = special_id(pad, "pad_token");
  root["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", eos}, {"type_id", 0}}}}})},
      {"special_tokens", {{eos, {{"id", eos}, {"ids", json::array({eos_id})}, {"tokens", json::array({eos})}}}}}};
  const int64_t model_max_length = config.integer("model_max_length", 512, 1);
  return T5Tokenizer(TokenizerPipeline::from_json(root, json_path), eos_id, pad_id,
                     static_cast<size_t>(model_max_length));
}

PaddedIds T5Tokenizer::encode_padded(std::string_view text, size_t max_length) const {
  return pipeline_.encode_padded(text, max_length, pad_id_);
}

std::vector<int32_t> T5Tokenizer::encode(std::string_view text) const { return pipeline_.encode_with_specials(text); }

}  // namespace omni
