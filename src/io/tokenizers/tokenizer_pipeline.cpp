#include "io/tokenizers/tokenizer_pipeline.h"

#include <unordered_map>

#include "core/error.h"
#include "io/tokenizers/added_tokens.h"
#include "io/tokenizers/bpe.h"
#include "io/tokenizers/normalizer.h"
#include "io/tokenizers/pre_tokenizer.h"
#include "io/tokenizers/tokenizer_fields.h"
#include "io/tokenizers/unigram.h"
#include "io/tokenizers/utf8.h"

namespace omni {

using nlohmann::json;

struct TokenizerPipeline::Impl {
  std::string source;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::unique_ptr<BpeModel> bpe;
  std::unique_ptr<UnigramModel> unigram;
  std::vector<AddedToken> added;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  std::unordered_map<std::string, int32_t> added_ids;
  std::vector<int32_t> prefix, suffix;

  void load_model(const json& root, const TokenizerFields& f);
  void load_added_tokens(const json& root, const TokenizerFields& f);
  void load_post_processor(const json& spec, const std::string& path, const TokenizerFields& f);
  std::optional<int32_t> model_id(std::string_view token) const;
  void encode_segment(std::string_view text, bool at_input_start, std::vector<int32_t>& ids) const;
};

std::optional<int32_t> TokenizerPipeline::Impl::model_id(std::string_view token) const {
  if (unigram) return unigram->find(token);
  const auto it = bpe->vocab().find(std::string(token));
  if (it == bpe->vocab().end()) return std::nullopt;
  return it->second;
}

void TokenizerPipeline::Impl::load_model(const json& root, const TokenizerFields& f) {
  const json& model = f.object(root, "", "model");
  const std::string type = f.string(model, "model", "type");
  if (type == "Unigram") {
    const json& vocab = f.array(model, "model", "vocab");
    std::vector<UnigramModel::Piece> pieces;
    pieces.reserve(vocab.size());
    for (size_t i = 0; i < vocab.size(); ++i) {
      const json& p = vocab[i];
      OMNI_CHECK(p.is_array() && p.size() == 2 && p[0].is_string() && p[1].is_number(), source, ": field model.vocab[",
                 i, "] must be [piece, score], found ", p.dump());
      std::string text = p[0].get<std::string>();
      OMNI_CHECK(utf8::is_valid(text), source, ": field model.vocab[", i, "] is not valid UTF-8");
      pieces.push_back({std::move(text), p[1].get<double>()});
    }
    std::optional<int32_t> unk;
    if (const auto it = model.find("unk_id"); it != model.end() && !it->is_null())
      unk = f.token_id(*it, "model.unk_id");
    unigram = std::make_unique<UnigramModel>(std::move(pieces), unk, f.boolean(model, "model", "byte_fallback", false),
                                             source);
    return;
  }
  OMNI_CHECK(type == "BPE", source, ": field model.type is '", type, "', which is not supported (supported: BPE, Unigram)");
  OMNI_CHECK(pre_tokenizer.ends_with_byte_level(), source,
             ": field pre_tokenizer: a BPE model is supported only after a ByteLevel pre-tokenizer (byte-level BPE)");
  const json& vocab_json = f.object(model, "model", "vocab");
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<int32_t, std::string> seen;
  for (const auto& [token, id_json] : vocab_json.items()) {
    const int32_t id = f.token_id(id_json, "model.vocab[\"" + token + "\"]");
    const auto [it, fresh] = seen.try_emplace(id, token);
    OMNI_CHECK(fresh, source, ": field model.vocab: id ", id, " is used by both '", it->second, "' and '", token, "'");
    vocab.emplace(token, id);
  }
  OMNI_CHECK(!vocab.empty(), source, ": field model.vocab is empty");
  const json& merges_json = f.array(model, "model", "merges");
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_json.size());
  for (size_t i = 0; i < merges_json.size(); ++i) {
    const json& m = merges_json[i];
    if (m.is_string()) {
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
  if (const auto it = model.find("dropout"); it != model.end() && !it->is_null())
    OMNI_CHECK(it->is_number() && it->get<double>() == 0.0, source, ": field model.dropout = ", it->dump(),
               " is not supported (dropout is for training)");
  BpeOptions options;
  options.fuse_unk = f.boolean(model, "model", "fuse_unk", false);
  options.byte_fallback = f.boolean(model, "model", "byte_fallback", false);
  options.ignore_merges = f.boolean(model, "model", "ignore_merges", false);
  options.continuing_subword_prefix = f.string_or(model, "model", "continuing_subword_prefix", "");
  options.end_of_word_suffix = f.string_or(model, "model", "end_of_word_suffix", "");
  if (const auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
    const std::string unk = f.string(model, "model", "unk_token");
    const auto v = vocab.find(unk);
    OMNI_CHECK(v != vocab.end(), source, ": field model.unk_token '", unk, "' is not in model.vocab");
    options.unk_id = v->second;
  }
  bpe = std::make_unique<BpeModel>(std::move(vocab), merges, options, source);
}

void TokenizerPipeline::Impl::load_added_tokens(const json& root, const TokenizerFields& f) {
  const auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return;
  OMNI_CHECK(it->is_array(), source, ": field added_tokens must be an array, found ", it->type_name());
  added.reserve(it->size());  // the matchers keep pointers into `added`
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
    if (const auto m = model_id(token.content))
      OMNI_CHECK(*m == token.id, source, ": field ", path, ".id: '", token.content, "' is id ", token.id,
                 " here but id ", *m, " in model.vocab");
    const auto [prev, fresh] = added_ids.try_emplace(token.content, token.id);
    OMNI_CHECK(fresh || prev->second == token.id, source, ": field ", path, ".content '", token.content,
               "' appears twice with ids ", prev->second, " and ", token.id);
    if (!fresh) continue;
    // HF matches a normalized token by its normalized form (e.g. lowercased).
    if (token.normalized) token.content = normalizer.apply(token.content);
    if (token.content.empty()) continue;
    added.push_back(std::move(token));
  }
  for (const AddedToken& t : added) (t.normalized ? normalized_matcher : raw_matcher).add(&t);
  raw_matcher.finish();
  normalized_matcher.finish();
}

void TokenizerPipeline::Impl::load_post_processor(const json& spec, const std::string& path, const TokenizerFields& f) {
  if (spec.is_null()) return;
  const std::string type = f.string(spec, path, "type");
  const auto pair_id = [&](const char* key) {
    const json& v = f.required(spec, path, key);
    OMNI_CHECK(v.is_array() && v.size() == 2 && v[0].is_string(), source, ": field ", path, ".", key,
               " must be [token, id], found ", v.dump());
    return f.token_id(v[1], str_cat(path, ".", key, "[1]"));
  };
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    // Applied after the earlier processors of a Sequence: the new tokens go outside theirs.
    prefix.insert(prefix.begin(), pair_id("cls"));
    suffix.push_back(pair_id("sep"));
  } else if (type == "TemplateProcessing") {
    const json& single = f.array(spec, path, "single");
    const json& specials = f.object(spec, path, "special_tokens");
    std::vector<int32_t> before, after;
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string at = str_cat(path, ".single[", i, "]");
      const json& item = single[i];
      if (item.is_object() && item.contains("Sequence")) {
        OMNI_CHECK(!seen_sequence, source, ": field ", at, ": a single-sequence template with two sequences");
        seen_sequence = true;
        continue;
      }
      OMNI_CHECK(item.is_object() && item.contains("SpecialToken"), source, ": field ", at,
                 " must be {\"Sequence\": ...} or {\"SpecialToken\": ...}, found ", item.dump());
      const std::string name = f.string(item["SpecialToken"], at + ".SpecialToken", "id");
      const auto sp = specials.find(name);
      OMNI_CHECK(sp != specials.end(), source, ": field ", at, ": special token '", name, "' is not in ", path,
                 ".special_tokens");
      const json& ids = f.array(*sp, path + ".special_tokens." + name, "ids");
      for (size_t k = 0; k < ids.size(); ++k)
        (seen_sequence ? after : before).push_back(f.token_id(ids[k], str_cat(path, ".special_tokens.", name, ".ids[", k, "]")));
    }
    OMNI_CHECK(seen_sequence, source, ": field ", path, ".single has no {\"Sequence\": ...} item");
    prefix.insert(prefix.begin(), before.begin(), before.end());
    suffix.insert(suffix.end(), after.begin(), after.end());
  } else if (type == "Sequence") {
    const json& list = f.array(spec, path, "processors");
    for (size_t i = 0; i < list.size(); ++i) load_post_processor(list[i], str_cat(path, ".processors[", i, "]"), f);
  } else if (type != "ByteLevel") {
    OMNI_FAIL(source, ": field ", path, ".type is '", type,
              "', which is not supported (supported: RobertaProcessing, BertProcessing, TemplateProcessing, "
              "ByteLevel, Sequence)");
  }
}

void TokenizerPipeline::Impl::encode_segment(std::string_view text, bool at_input_start,
                                             std::vector<int32_t>& ids) const {
  const std::string normalized = normalizer.apply(text);
  bool first = at_input_start;
  std::vector<std::string> pieces;
  const auto encode_part = [&](std::string_view part) {
    pieces.clear();
    pre_tokenizer.split(part, first, pieces);
    first = false;
    for (const std::string& p : pieces) {
      if (unigram)
        unigram->encode(p, ids);
      else
        bpe->encode_word(p, ids);
    }
  };
  if (normalized_matcher.empty())
    encode_part(normalized);
  else
    normalized_matcher.split(normalized, ids, encode_part);
}

TokenizerPipeline TokenizerPipeline::from_json(const json& root, const std::string& source) {
  auto impl = std::make_shared<Impl>();
  impl->source = source;
  const TokenizerFields f(source);
  OMNI_CHECK(root.is_object(), source, ": the top level must be a JSON object, found ", root.type_name());
  const auto field_or_null = [&](const char* key) -> const json& {
    static const json null_value;
    const auto it = root.find(key);
    return it == root.end() ? null_value : *it;
  };
  impl->normalizer = Normalizer::from_json(field_or_null("normalizer"), "normalizer", f);
  impl->pre_tokenizer = PreTokenizer::from_json(field_or_null("pre_tokenizer"), "pre_tokenizer", f);
  impl->load_model(root, f);
  impl->load_added_tokens(root, f);
  impl->load_post_processor(field_or_null("post_processor"), "post_processor", f);
  return TokenizerPipeline(std::move(impl));
}

std::vector<int32_t> TokenizerPipeline::encode(std::string_view text) const {
  const size_t bad = utf8::first_invalid(text);
  OMNI_CHECK(bad == text.size(), impl_->source, ": the text to encode is not valid UTF-8 at byte ", bad);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (impl_->raw_matcher.empty()) {
    impl_->encode_segment(text, true, ids);
  } else {
    bool first = true;
    impl_->raw_matcher.split(text, ids, [&](std::string_view segment) {
      // A segment after an added token does not begin the input (Metaspace "first").
      impl_->encode_segment(segment, first && segment.data() == text.data(), ids);
      first = false;
    });
  }
  return ids;
}

std::vector<int32_t> TokenizerPipeline::encode_with_specials(std::string_view text) const {
  std::vector<int32_t> ids = impl_->prefix;
  const std::vector<int32_t> body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), impl_->suffix.begin(), impl_->suffix.end());
  return ids;
}

PaddedIds TokenizerPipeline::encode_padded(std::string_view text, size_t max_length, int32_t pad_id) const {
  const size_t specials = impl_->prefix.size() + impl_->suffix.size();
  OMNI_CHECK(max_length >= specials, impl_->source, ": max_length ", max_length, " cannot hold the ", specials,
             " special tokens the post-processor adds");
  const std::vector<int32_t> body = encode(text);
  PaddedIds out;
  out.length = body.size() + specials;
  out.ids = impl_->prefix;
  out.ids.insert(out.ids.end(), body.begin(),
                 body.begin() + static_cast<std::ptrdiff_t>(std::min(body.size(), max_length - specials)));
  out.ids.insert(out.ids.end(), impl_->suffix.begin(), impl_->suffix.end());
  out.ids.resize(max_length, pad_id);
  return out;
}

std::optional<int32_t> TokenizerPipeline::token_to_id(std::string_view token) const {
  if (const auto it = impl_->added_ids.find(std::string(token)); it != impl_->added_ids.end()) return it->second;
  return impl_->model_id(token);
}

const std::vector<int32_t>& TokenizerPipeline::prefix_ids() const { return impl_->prefix; }
const std::vector<int32_t>& TokenizerPipeline::suffix_ids() const { return impl_->suffix; }
const std::string& TokenizerPipeline::source() const { return impl_->source; }

}  // namespace omni
