// The "normalizer" of a tokenizer.json, as HF `tokenizers` applies it before pre-tokenization: a list of steps
// run in order over the whole text. Supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace (String or
// Regex pattern), Prepend, Precompiled (SentencePiece charsmap) and Sequence of those; anything else is refused
// naming the file and the field. Replace skips empty regex matches (HF would insert the content there).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace omni {

class TokenizerFields;

class Normalizer {
 public:
  Normalizer();
  ~Normalizer();
  Normalizer(Normalizer&&) noexcept;
  Normalizer& operator=(Normalizer&&) noexcept;

  // `spec` is the "normalizer" value (null: no normalization); `path` its field name for errors.
  static Normalizer from_json(const nlohmann::json& spec, const std::string& path, const TokenizerFields& fields);

  bool empty() const;
  // text must be valid UTF-8; the result is too.
  std::string apply(std::string_view text) const;

 private:
  struct Step;
  std::vector<std::unique_ptr<Step>> steps_;
};

}  // namespace omni
