// UTF-8 decoding with the "maximal subpart" replacement rule (Unicode ch. 3, as Rust's String::from_utf8_lossy
// applies it), so text decoded here matches Hugging Face `tokenizers` byte for byte, also on broken byte runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace omni::utf8 {

// Result of reading one sequence at a position.
struct Step {
  enum Kind { kValid, kInvalid, kIncomplete } kind;
  char32_t code_point;  // valid only for kValid
  size_t length;        // bytes consumed: the sequence (kValid), the maximal invalid subpart (kInvalid, >= 1),
                        // or the valid-so-far prefix cut off by the end of the input (kIncomplete, >= 1)
};

// Reads one UTF-8 sequence starting at s[pos] (pos < s.size()).
Step step(std::string_view s, size_t pos);

// Byte offset of the first invalid or incomplete sequence, or s.size() when s is valid UTF-8.
size_t first_invalid(std::string_view s);
inline bool is_valid(std::string_view s) { return first_invalid(s) == s.size(); }

// Replaces each maximal invalid subpart (and an incomplete tail) with U+FFFD.
std::string to_valid_lossy(std::string_view s);

// Length of the longest prefix that does not end inside a sequence that could still be completed by more bytes.
// Lossy-decoding that prefix now and the rest later gives the same text as decoding everything at once.
size_t complete_prefix_length(std::string_view s);

// Appends the UTF-8 encoding of a code point (which must be a Unicode scalar value).
void append(std::string& out, char32_t cp);

}  // namespace omni::utf8
