#include "io/tokenizers/normalizer.h"

#include <optional>

#include "core/error.h"
#include "io/tokenizers/added_tokens.h"
#include "io/tokenizers/precompiled_charsmap.h"
#include "io/tokenizers/regex_split.h"
#include "io/tokenizers/tokenizer_fields.h"
#include "io/tokenizers/unicode_normalize.h"
#include "io/tokenizers/utf8.h"

namespace omni {

using nlohmann::json;

struct Normalizer::Step {
  enum Kind { kNormalForm, kLowercase, kStrip, kReplace, kPrepend, kPrecompiled } kind;
  NormalForm form = NormalForm::kNfc;
  bool strip_left = false, strip_right = false;
  std::unique_ptr<RegexSplitter> pattern;  // Replace
  std::string content;                     // Replace: the replacement; Prepend: the prefix
  std::optional<PrecompiledCharsmap> charsmap;

  std::string apply(std::string_view text) const {
    switch (kind) {
      case kNormalForm: return to_normal_form(text, form);
      case kLowercase: return to_lowercase(text);
      case kStrip: return strip(text);
      case kReplace: {
        std::string out;
        size_t emitted = 0;
        pattern->matches(text, [&](size_t begin, size_t end) {
          if (end == begin) return;
          out.append(text.substr(emitted, begin - emitted));
          out += content;
          emitted = end;
        });
        out.append(text.substr(emitted));
        return out;
      }
      case kPrepend: return text.empty() ? std::string() : content + std::string(text);
      case kPrecompiled: return charsmap->normalize(text);
    }
    return std::string(text);
  }

  std::string strip(std::string_view text) const {
    size_t begin = 0, end = text.size();
    if (strip_left) {
      while (begin < end) {
        const utf8::Step st = utf8::step(text, begin);
        if (!is_unicode_whitespace(st.code_point)) break;
        begin += st.length;
      }
    }
    if (strip_right) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
        if (!is_unicode_whitespace(utf8::step(text, start).code_point)) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }
};

Normalizer::Normalizer() = default;
Normalizer::~Normalizer() = default;
Normalizer::Normalizer(Normalizer&&) noexcept = default;
Normalizer& Normalizer::operator=(Normalizer&&) noexcept = default;

bool Normalizer::empty() const { return steps_.empty(); }

std::string Normalizer::apply(std::string_view text) const {
  std::string current(text);
  for (const auto& step : steps_) current = step->apply(current);
  return current;
}

Normalizer Normalizer::from_json(const json& spec, const std::string& path, const TokenizerFields& f) {
  Normalizer n;
  if (spec.is_null()) return n;
  const std::string& file = f.file();
  const auto visit = [&](const auto& self, const json& node, const std::string& at) -> void {
    const std::string type = f.string(node, at, "type");
    auto step = std::make_unique<Step>();
    if (type == "Sequence") {
      const json& list = f.array(node, at, "normalizers");
      for (size_t i = 0; i < list.size(); ++i) self(self, list[i], str_cat(at, ".normalizers[", i, "]"));
      return;
    } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
      step->kind = Step::kNormalForm;
      step->form = type == "NFC" ? NormalForm::kNfc : type == "NFD" ? NormalForm::kNfd
                                 : type == "NFKC" ? NormalForm::kNfkc : NormalForm::kNfkd;
    } else if (type == "Lowercase") {
      step->kind = Step::kLowercase;
    } else if (type == "Strip") {
      step->kind = Step::kStrip;
      step->strip_left = f.boolean(node, at, "strip_left", true);
      step->strip_right = f.boolean(node, at, "strip_right", true);
    } else if (type == "Replace") {
      step->kind = Step::kReplace;
      const json& pattern = f.object(node, at, "pattern");
      const bool literal = pattern.contains("String");
      OMNI_CHECK(literal || pattern.contains("Regex"), file, ": field ", at, ".pattern must hold \"Regex\" or \"String\"");
      const std::string text = f.string(pattern, at + ".pattern", literal ? "String" : "Regex");
      step->content = f.string(node, at, "content");
      OMNI_CHECK(utf8::is_valid(step->content), file, ": field ", at, ".content is not valid UTF-8");
      if (literal && text.empty()) return;  // HF: an empty pattern matches nothing
      step->pattern = std::make_unique<RegexSplitter>(text, literal, file + ": field " + at + ".pattern");
    } else if (type == "Prepend") {
      step->kind = Step::kPrepend;
      step->content = f.string(node, at, "prepend");
      OMNI_CHECK(utf8::is_valid(step->content), file, ": field ", at, ".prepend is not valid UTF-8");
    } else if (type == "Precompiled") {
      step->kind = Step::kPrecompiled;
      const json& blob = f.required(node, at, "precompiled_charsmap");
      OMNI_CHECK(blob.is_string(), file, ": field ", at, ".precompiled_charsmap must be a base64 string, found ",
                 blob.type_name());
      const auto bytes = decode_base64(blob.get<std::string>());
      OMNI_CHECK(bytes, file, ": field ", at, ".precompiled_charsmap is not valid base64");
      step->charsmap.emplace(*bytes, file + ": field " + at + ".precompiled_charsmap");
    } else {
      OMNI_FAIL(file, ": field ", at, ".type is '", type,
                "', which is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, "
                "Precompiled, Sequence)");
    }
    n.steps_.push_back(std::move(step));
  };
  visit(visit, spec, path);
  return n;
}

}  // namespace omni
