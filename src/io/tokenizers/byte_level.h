// GPT-2's byte-level alphabet: each byte 0..255 is shown as one printable Unicode character, so BPE vocabularies
// hold only printable strings. Printable Latin-1 bytes map to themselves; the rest (controls, space, 0x7F-0xA0,
// 0xAD) take code points from U+0100 upward in byte order.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace omni::byte_level {

// GPT-2's pre-tokenizer regex, which the ByteLevel pre-tokenizer applies when "use_regex" is true.
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// The character standing for a byte.
char32_t byte_to_char(uint8_t b);

// The byte a character stands for, if it is one of the 256 alphabet characters.
std::optional<uint8_t> char_to_byte(char32_t c);

// UTF-8 of byte_to_char(b) for every byte of raw (e.g. " the" -> "Ġthe").
std::string encode(std::string_view raw);

// The raw bytes of a byte-level token string; nullopt when some character is outside the alphabet (then HF's
// ByteLevel decoder keeps the token's own UTF-8 bytes instead).
std::optional<std::string> decode(std::string_view token);

}  // namespace omni::byte_level
