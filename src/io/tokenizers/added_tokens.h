// Added tokens (tokenizer.json "added_tokens": specials like <|endoftext|> or </s>) and how HF `tokenizers` finds
// them in text: the leftmost match first, the longest token at that position, lstrip/rstrip eating whitespace.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace omni {

struct AddedToken {
  int32_t id;
  std::string content;
  bool special, lstrip, rstrip, normalized;
};

// Unicode White_Space (Rust's char::is_whitespace), which HF uses for lstrip/rstrip, Strip and WhitespaceSplit.
bool is_unicode_whitespace(char32_t c);

class AddedTokenMatcher {
 public:
  // The token must outlive the matcher (callers keep them in a vector reserved up front).
  void add(const AddedToken* token) { by_first_byte_[static_cast<uint8_t>(token->content[0])].push_back(token); }
  // Longest first within each group, file order among equal lengths; once, after the last add (sorting at every
  // add was quadratic: 20 000 added tokens took minutes to load).
  void finish();
  bool empty() const;

  // Calls on_text for the text between tokens and appends token ids to ids, in order.
  void split(std::string_view text, std::vector<int32_t>& ids,
             const std::function<void(std::string_view)>& on_text) const;

 private:
  std::array<std::vector<const AddedToken*>, 256> by_first_byte_;
};

}  // namespace omni
