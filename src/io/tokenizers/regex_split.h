// The "Split" pre-tokenizer of HF `tokenizers` with behavior "Isolated": every regex match is one piece and so is
// every stretch of text between matches. Compiled with PCRE2 in UTF + UCP mode (Unicode \p{L}, \s, case folding
// in (?i:...)) and JIT when available.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace omni {

class RegexSplitter {
 public:
  // `pattern` is a PCRE2 regex (or a literal string when `literal`); `source` names the file and field for errors.
  RegexSplitter(const std::string& pattern, bool literal, const std::string& source);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Calls on_piece for each non-empty piece, in order; the pieces concatenate to `text`.
  // `text` must be valid UTF-8 (the caller validates once; matching skips PCRE2's per-call check, which would
  // otherwise rescan the whole text at every match and make long inputs quadratic).
  void split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const;
  // Calls on_match(begin, end) for each match, in order (byte offsets, end == begin for an empty match before the
  // end of the text; `text` valid UTF-8 as above).
  void matches(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const;

 private:
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
  std::string source_;
};

}  // namespace omni
