// SentencePiece's precompiled normalization rules ("precompiled_charsmap" of tokenizer.json's Precompiled
// normalizer, e.g. nmt_nfkc): a Darts double-array trie over UTF-8 byte strings whose values are offsets into a
// blob of NUL-terminated replacement strings.
//
// Blob layout: u32 little-endian trie size in bytes (a multiple of 4), the trie's 32-bit units, then the
// replacement strings. A unit holds a label (bits 0-7, plus bit 31 so leaves never match a label), a has-leaf
// flag (bit 8) and the offset to its children (bits 10-30, shifted left by 8 when bit 9 is set); a leaf unit's
// value (bits 0-30) is the replacement's offset.
//
// Applied as HF `tokenizers` does (which is not what SentencePiece itself does): the text is cut into extended
// grapheme clusters; a cluster shorter than 6 bytes whose beginning matches a trie key is replaced whole by the
// replacement of the SHORTEST matching key; otherwise each code point is replaced on its own when it begins a key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace omni {

class PrecompiledCharsmap {
 public:
  // Parses the raw blob (already base64-decoded); `source` names the file and field in errors, which this
  // throws for a blob too short for its trie, a trie size that is not a multiple of 4, an empty trie, or
  // replacement strings that are not valid UTF-8.
  PrecompiledCharsmap(std::string_view blob, std::string source);

  std::string normalize(std::string_view utf8_text) const;

  // The replacement for the shortest trie key that is a prefix of `chunk`, if any (the key search stops at a NUL
  // byte, as Darts does). Throws for a trie whose links leave the array or whose value points outside the strings.
  std::optional<std::string_view> transform(std::string_view chunk) const;

 private:
  std::vector<uint32_t> units_;
  std::string normalized_;
  std::string source_;
};

// Standard base64 (RFC 4648, '=' padding required as Rust's STANDARD engine does); nullopt for anything else.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace omni
