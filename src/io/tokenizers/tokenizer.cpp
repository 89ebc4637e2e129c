#include "io/tokenizers/tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "io/tokenizers/added_tokens.h"
#include "io/tokenizers/bpe.h"
#include "io/tokenizers/byte_level.h"
#include "io/file_util.h"
#include "io/json_fields.h"
#include "io/tokenizers/regex_split.h"
#include "io/tokenizers/tokenizer_fields.h"
#include "io/tokenizers/unicode_normalize.h"
#include "io/tokenizers/utf8.h"

namespace omni {

using nlohmann::json;

namespace {

using Fields = TokenizerFields;

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  std::unique_ptr<BpeModel> bpe;
  bool nfc = false;
  std::vector<std::unique_ptr<RegexSplitter>> splitters;  // applied in order, before the byte-level step
  bool prefix_space = false;                              // ByteLevel add_prefix_space
  std::unique_ptr<RegexSplitter> byte_level_regex;        // ByteLevel use_regex

  std::vector<AddedToken> added;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  std::unordered_map<std::string, int32_t> added_ids;

  std::vector<std::string> tokens;       // id -> token string ("" when the id has none)
  std::vector<std::string> bytes;        // id -> decoded bytes
  std::vector<uint8_t> has_token, special;
  std::vector<int32_t> eos;

  void load(const json& root);
  void load_normalizer(const json& root, const Fields& f);
  void load_pre_tokenizer(const json& root, const Fields& f);
  void load_model(const json& root, const Fields& f);
  void load_added_tokens(const json& root, const Fields& f);
  void load_decoder(const json& root, const Fields& f);
  void build_id_tables();
  void add_eos(const std::string& token, const std::string& where);

  void encode_normalized(std::string_view text, std::vector<int32_t>& ids) const;
  void pre_tokenize(std::string_view piece, size_t level, std::vector<int32_t>& ids) const;
};

void Tokenizer::Impl::load(const json& root) {
  const Fields f(source);
  OMNI_CHECK(root.is_object(), source, ": the top level must be a JSON object, found ", root.type_name());
  load_model(root, f);
  load_normalizer(root, f);
  load_pre_tokenizer(root, f);
  load_added_tokens(root, f);
  load_decoder(root, f);
  build_id_tables();
}

void Tokenizer::Impl::load_normalizer(const json& root, const Fields& f) {
  const auto it = root.find("normalizer");
  if (it == root.end() || it->is_null()) return;
  std::function<void(const json&, const std::string&)> visit = [&](const json& n, const std::string& path) {
    const std::string type = f.string(n, path, "type");
    if (type == "NFC") {
      nfc = true;
    } else if (type == "Sequence") {
      const json& list = f.required(n, path, "normalizers");
      OMNI_CHECK(list.is_array(), source, ": field ", path, ".normalizers must be an array");
      for (size_t i = 0; i < list.size(); ++i) visit(list[i], str_cat(path, ".normalizers[", i, "]"));
    } else {
      OMNI_FAIL(source, ": field ", path, ".type is '", type, "', which is not supported (supported: NFC, Sequence)");
    }
  };
  visit(*it, "normalizer");
}

void Tokenizer::Impl::load_pre_tokenizer(const json& root, const Fields& f) {
  const json& pre = f.object(root, "", "pre_tokenizer");
  std::vector<std::pair<const json*, std::string>> steps;
  if (f.string(pre, "pre_tokenizer", "type") == "Sequence") {
    const json& list = f.required(pre, "pre_tokenizer", "pretokenizers");
    OMNI_CHECK(list.is_array() && !list.empty(), source,
               ": field pre_tokenizer.pretokenizers must be a non-empty array");
    for (size_t i = 0; i < list.size(); ++i) steps.emplace_back(&list[i], str_cat("pre_tokenizer.pretokenizers[", i, "]"));
  } else {
    steps.emplace_back(&pre, "pre_tokenizer");
  }

  for (size_t i = 0; i < steps.size(); ++i) {
    const json& step = *steps[i].first;
    const std::string& path = steps[i].second;
    const std::string type = f.string(step, path, "type");
    if (type == "Split") {
      const json& pattern = f.object(step, path, "pattern");
      const bool literal = pattern.contains("String");
      OMNI_CHECK(literal || pattern.contains("Regex"), source, ": field ", path,
                 ".pattern must hold \"Regex\" or \"String\"");
      const std::string text = f.string(pattern, path + ".pattern", literal ? "String" : "Regex");
      const std::string behavior = f.string(step, path, "behavior");
      OMNI_CHECK(behavior == "Isolated", source, ": field ", path, ".behavior is '", behavior,
                 "', which is not supported (supported: Isolated)");
      OMNI_CHECK(!f.boolean(step, path, "invert", false), source, ": field ", path,
                 ".invert = true is not supported");
      splitters.push_back(std::make_unique<RegexSplitter>(text, literal, source + ": field " + path + ".pattern"));
    } else if (type == "ByteLevel") {
      OMNI_CHECK(i + 1 == steps.size(), source, ": field ", path,
                 ": ByteLevel must be the last pre-tokenizer step (other orders are not supported)");
      prefix_space = f.boolean(step, path, "add_prefix_space", false);
      if (f.boolean(step, path, "use_regex", true))
        byte_level_regex = std::make_unique<RegexSplitter>(byte_level::kGpt2Pattern, false, source + ": GPT-2 regex");
    } else {
      OMNI_FAIL(source, ": field ", path, ".type is '", type,
                "', which is not supported (supported: Split, ByteLevel, Sequence of those)");
    }
  }
  OMNI_CHECK(f.string(*steps.back().first, steps.back().second, "type") == "ByteLevel", source,
             ": field pre_tokenizer: only byte-level BPE is supported, so the pre-tokenizer must end with ByteLevel");
}

void Tokenizer::Impl::load_model(const json& root, const Fields& f) {
  const json& model = f.object(root, "", "model");
  // Files written by old `tokenizers` versions omit the type; vocab + merges then means BPE.
  const std::string type = model.contains("type") ? f.string(model, "model", "type")
                                                  : (model.contains("merges") ? "BPE" : "(missing)");
  OMNI_CHECK(type == "BPE", source, ": field model.type is '", type,
             "', which is not supported (supported: BPE; WordPiece, Unigram and WordLevel are not)");

  const json& vocab_json = f.object(model, "model", "vocab");
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<int32_t, std::string> seen_ids;
  vocab.reserve(vocab_json.size());
  for (const auto& [token, id_json] : vocab_json.items()) {
    const int32_t id = f.token_id(id_json, "model.vocab[\"" + token + "\"]");
    const auto [it, fresh] = seen_ids.try_emplace(id, token);
    OMNI_CHECK(fresh, source, ": field model.vocab: id ", id, " is used by both '", it->second, "' and '", token, "'");
    vocab.emplace(token, id);
  }
  OMNI_CHECK(!vocab.empty(), source, ": field model.vocab is empty");

  const json& merges_json = f.required(model, "model", "merges");
  OMNI_CHECK(merges_json.is_array(), source, ": field model.merges must be an array, found ",
             merges_json.type_name());
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_json.size());
  for (size_t i = 0; i < merges_json.size(); ++i) {
    const json& m = merges_json[i];
    if (m.is_string()) {  // "a b": tokens never contain a plain space in byte-level vocabularies
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      OMNI_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos, source,
                 ": field model.merges[", i, "] must be two tokens separated by one space, found \"", s, "\"");
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else {
      OMNI_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), source,
                 ": field model.merges[", i, "] must be \"a b\" or [\"a\", \"b\"], found ", m.dump());
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    }
  }

  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = model.find(key);
    OMNI_CHECK(it == model.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()), source,
               ": field model.", key, " = ", it->dump(), " is not supported (byte-level BPE uses none)");
  }
  if (const auto it = model.find("dropout"); it != model.end() && !it->is_null()) {
    OMNI_CHECK(it->is_number() && it->get<double>() == 0.0, source, ": field model.dropout = ", it->dump(),
               " is not supported (dropout is for training)");
  }

  BpeOptions options;
  options.fuse_unk = f.boolean(model, "model", "fuse_unk", false);
  options.byte_fallback = f.boolean(model, "model", "byte_fallback", false);
  options.ignore_merges = f.boolean(model, "model", "ignore_merges", false);
  if (const auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
    const std::string unk = f.string(model, "model", "unk_token");
    const auto v = vocab.find(unk);
    OMNI_CHECK(v != vocab.end(), source, ": field model.unk_token '", unk, "' is not in model.vocab");
    options.unk_id = v->second;
  }
  bpe = std::make_unique<BpeModel>(std::move(vocab), merges, options, source);
}

void Tokenizer::Impl::load_added_tokens(const json& root, const Fields& f) {
  const auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return;
  OMNI_CHECK(it->is_array(), source, ": field added_tokens must be an array, found ", it->type_name());
  std::unordered_map<int32_t, std::string> model_tokens;
  for (const auto& [token, id] : bpe->vocab()) model_tokens.emplace(id, token);

  added.reserve(it->size());  // pointers into `added` go to the matchers
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    const std::string path = str_cat("added_tokens[", i, "]");
    AddedToken token;
    token.id = f.token_id(f.required(t, path, "id"), path + ".id");
    token.content = f.string(t, path, "content");
    OMNI_CHECK(!token.content.empty(), source, ": field ", path, ".content is empty");
    OMNI_CHECK(utf8::is_valid(token.content), source, ": field ", path, ".content is not valid UTF-8");
    token.special = f.boolean(t, path, "special", false);
    token.lstrip = f.boolean(t, path, "lstrip", false);
    token.rstrip = f.boolean(t, path, "rstrip", false);
    token.normalized = f.boolean(t, path, "normalized", !token.special);
    OMNI_CHECK(!f.boolean(t, path, "single_word", false), source, ": field ", path,
               ".single_word = true is not supported");
    if (const auto m = model_tokens.find(token.id); m != model_tokens.end())
      OMNI_CHECK(m->second == token.content, source, ": field ", path, ".id: id ", token.id, " is '", token.content,
                 "' here but '", m->second, "' in model.vocab");
    const auto [prev, fresh] = added_ids.try_emplace(token.content, token.id);
    OMNI_CHECK(fresh || prev->second == token.id, source, ": field ", path, ".content '", token.content,
               "' appears twice with ids ", prev->second, " and ", token.id);
    added.push_back(std::move(token));
  }
  for (const AddedToken& t : added) (t.normalized ? normalized_matcher : raw_matcher).add(&t);
  raw_matcher.finish();
  normalized_matcher.finish();
}

void Tokenizer::Impl::load_decoder(const json& root, const Fields& f) {
  const json& decoder = f.required(root, "", "decoder");
  OMNI_CHECK(decoder.is_object(), source, ": field decoder must be an object (byte-level BPE needs the ByteLevel ",
             "decoder), found ", decoder.type_name());
  const std::string type = f.string(decoder, "decoder", "type");
  OMNI_CHECK(type == "ByteLevel", source, ": field decoder.type is '", type,
             "', which is not supported (supported: ByteLevel)");
}

void Tokenizer::Impl::build_id_tables() {
  // Id tables are sized by the largest id. Real vocabularies are dense (ids 0..n−1, added tokens right after), so
  // an id far beyond the number of tokens is a broken file, not a reason to allocate gigabytes.
  constexpr int64_t kMaxIdGap = 1 << 16;
  int32_t size = 0;
  std::string largest;
  const auto note = [&](int32_t id, const std::string& token) {
    if (id + 1 > size) {
      size = id + 1;
      largest = token;
    }
  };
  for (const auto& [token, id] : bpe->vocab()) note(id, token);
  for (const AddedToken& t : added) note(t.id, t.content);
  const int64_t count = static_cast<int64_t>(bpe->vocab().size() + added.size());
  OMNI_CHECK(size <= count + kMaxIdGap, source, ": token \"", largest, "\" has id ", size - 1, ", but there are only ",
             count, " tokens; ids must be dense (at most ", kMaxIdGap, " unused ids)");
  tokens.assign(size, {});
  bytes.assign(size, {});
  has_token.assign(size, 0);
  special.assign(size, 0);
  const auto set = [&](int32_t id, const std::string& token) {
    tokens[id] = token;
    has_token[id] = 1;
    // HF's ByteLevel decoder: a token made only of byte-level characters gives those bytes, any other token
    // (e.g. an added token with characters outside the alphabet) its own UTF-8.
    bytes[id] = byte_level::decode(token).value_or(token);
  };
  for (const auto& [token, id] : bpe->vocab()) set(id, token);
  for (const AddedToken& t : added) {
    set(t.id, t.content);
    special[t.id] = t.special;
  }
}

void Tokenizer::Impl::add_eos(const std::string& token, const std::string& where) {
  const auto it = added_ids.find(token);
  const auto model_it = bpe->vocab().find(token);
  OMNI_CHECK(it != added_ids.end() || model_it != bpe->vocab().end(), where, ": eos token '", token,
             "' is not a token of ", source);
  const int32_t id = it != added_ids.end() ? it->second : model_it->second;
  if (std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
}

void Tokenizer::Impl::pre_tokenize(std::string_view piece, size_t level, std::vector<int32_t>& ids) const {
  if (level < splitters.size()) {
    splitters[level]->split(piece, [&](std::string_view sub) { pre_tokenize(sub, level + 1, ids); });
    return;
  }
  // The empty text (encode("") without added tokens reaches here whole) stays empty: HF prepends the space only
  // to a non-empty string (issue 7 fuzzing: front() of the empty view).
  std::string with_space;
  if (prefix_space && !piece.empty() && piece.front() != ' ') {
    with_space.reserve(piece.size() + 1);
    with_space.push_back(' ');
    with_space.append(piece);
    piece = with_space;
  }
  if (byte_level_regex)
    byte_level_regex->split(piece, [&](std::string_view word) { bpe->encode_word(word, ids); });
  else
    bpe->encode_word(piece, ids);
}

void Tokenizer::Impl::encode_normalized(std::string_view text, std::vector<int32_t>& ids) const {
  const auto encode_plain = [&](std::string_view part) { pre_tokenize(part, 0, ids); };
  std::string nfc_text;
  if (nfc) nfc_text = to_nfc(text);
  const std::string_view normalized = nfc ? std::string_view(nfc_text) : text;
  if (normalized_matcher.empty())
    encode_plain(normalized);
  else
    normalized_matcher.split(normalized, ids, encode_plain);
}

Tokenizer Tokenizer::from_file(const std::string& path) { return from_json_text(read_text_file(path), path); }

Tokenizer Tokenizer::from_json_text(std::string_view text, const std::string& source) {
  auto impl = std::make_shared<Impl>();
  impl->source = source;
  impl->load(parse_json_text(text, source));
  for (const char* name : {"<|endoftext|>", "<|im_end|>"}) {
    const auto it = impl->added_ids.find(name);
    if (it != impl->added_ids.end() && impl->special[it->second]) impl->eos.push_back(it->second);
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  auto impl = std::make_shared<Impl>();
  impl->source = dir + "/tokenizer.json";
  impl->load(read_json_file(impl->source));

  const std::string config_path = dir + "/tokenizer_config.json";
  const json config = read_json_file(config_path);
  OMNI_CHECK(config.is_object(), config_path, ": the top level must be a JSON object");
  if (const auto it = config.find("eos_token"); it != config.end() && !it->is_null()) {
    // Either "<|endoftext|>" or {"content": "<|endoftext|>", ...} (older transformers).
    const json& eos = *it;
    OMNI_CHECK(eos.is_string() || (eos.is_object() && eos.contains("content") && eos["content"].is_string()),
               config_path, ": field eos_token must be a string or an object with \"content\", found ", eos.dump());
    impl->add_eos(eos.is_string() ? eos.get<std::string>() : eos["content"].get<std::string>(),
                  config_path + ": field eos_token");
  }
  const std::string generation_path = dir + "/generation_config.json";
  if (file_exists(generation_path)) {
    const json gen = read_json_file(generation_path);
    if (const auto it = gen.is_object() ? gen.find("eos_token_id") : gen.end(); it != gen.end() && !it->is_null()) {
      const Fields f(generation_path);
      const auto add_id = [&](const json& v) {
        const int32_t id = f.token_id(v, "eos_token_id");
        OMNI_CHECK(id < static_cast<int32_t>(impl->has_token.size()) && impl->has_token[id], generation_path,
                   ": field eos_token_id: id ", id, " is not a token of ", impl->source);
        if (std::find(impl->eos.begin(), impl->eos.end(), id) == impl->eos.end()) impl->eos.push_back(id);
      };
      if (it->is_array())
        for (const json& v : *it) add_id(v);
      else
        add_id(*it);
    }
  }
  if (const auto it = impl->added_ids.find("<|im_end|>"); it != impl->added_ids.end() && impl->special[it->second])
    impl->add_eos("<|im_end|>", impl->source);
  OMNI_CHECK(!impl->eos.empty(), config_path, ": field eos_token: no end-of-sequence token is defined");
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  const size_t bad = utf8::first_invalid(text);
  OMNI_CHECK(bad == text.size(), "Tokenizer::encode: the text is not valid UTF-8 at byte ", bad);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  const auto encode_segment = [&](std::string_view segment) { impl_->encode_normalized(segment, ids); };
  if (impl_->raw_matcher.empty())
    encode_segment(text);
  else
    impl_->raw_matcher.split(text, ids, encode_segment);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string raw;
  for (int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    raw.append(token_bytes(id));
  }
  return utf8::to_valid_lossy(raw);
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->tokens.size()); }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (const auto it = impl_->added_ids.find(key); it != impl_->added_ids.end()) return it->second;
  if (const auto it = impl_->bpe->vocab().find(key); it != impl_->bpe->vocab().end()) return it->second;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  OMNI_CHECK(id >= 0 && id < vocab_size() && impl_->has_token[id], impl_->source, ": token id ", id,
             " has no token (vocabulary size ", vocab_size(), ")");
  return impl_->tokens[id];
}

std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->eos; }

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < vocab_size() && impl_->special[id]; }

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return impl_->bytes[id];
}

const std::string& Tokenizer::source() const { return impl_->source; }

std::string StreamingDecoder::push(int32_t id) {
  if (skip_special_ && tokenizer_.is_special(id)) return {};
  pending_.append(tokenizer_.token_bytes(id));
  const size_t complete = utf8::complete_prefix_length(pending_);
  std::string out = utf8::to_valid_lossy(std::string_view(pending_).substr(0, complete));
  pending_.erase(0, complete);
  return out;
}

std::string StreamingDecoder::finish() {
  std::string out = utf8::to_valid_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace omni
