// The "pre_tokenizer" of a tokenizer.json, as HF `tokenizers` applies it: it cuts normalized text into pieces
// that the model encodes one by one. Supported steps: Split (String or Regex pattern, every behavior, invert),
// WhitespaceSplit, Metaspace (replacement, prepend_scheme always/first/never, split) and ByteLevel
// (add_prefix_space, use_regex; the last step only: its pieces stay raw bytes, which the byte-level BPE model
// maps), and Sequence of those; anything else is refused naming the file and the field.
//
// Metaspace "first" prepends to the first piece of the input only (HF: the piece at original offset 0; the two
// differ only when a normalizer removed the text's first characters). Regexes run in PCRE2 10.42, HF's in onig:
// Unicode properties (\p{L} ...) agree up to the engines' Unicode versions, but \w differs (onig's includes
// combining marks), so a Split pattern with \w can cut "e\u0301" where HF does not.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace omni {

class TokenizerFields;

class PreTokenizer {
 public:
  PreTokenizer();
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // `spec` is the "pre_tokenizer" value (null: the whole text is one piece).
  static PreTokenizer from_json(const nlohmann::json& spec, const std::string& path, const TokenizerFields& fields);

  // Appends the non-empty pieces of `text` (valid UTF-8). `at_input_start`: the text begins the input (no added
  // token before it), for Metaspace's "first" scheme.
  void split(std::string_view text, bool at_input_start, std::vector<std::string>& pieces) const;

  bool ends_with_byte_level() const { return byte_level_; }

 private:
  struct Step;
  std::vector<std::unique_ptr<Step>> steps_;
  bool byte_level_ = false;
};

}  // namespace omni
