#include "io/tokenizers/precompiled_charsmap.h"

#include "core/error.h"
#include "io/tokenizers/unicode_normalize.h"
#include "io/tokenizers/utf8.h"

namespace omni {
namespace {

bool has_leaf(uint32_t unit) { return (unit >> 8) & 1; }
uint32_t value(uint32_t unit) { return unit & ((1u << 31) - 1); }
uint32_t label(uint32_t unit) { return unit & ((1u << 31) | 0xFF); }
uint32_t offset(uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); }

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  const auto digit = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int pad = 0;
    uint32_t group = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && last && k >= 2) {
        ++pad;
        group <<= 6;
        continue;
      }
      const int d = digit(c);
      if (d < 0 || pad > 0) return std::nullopt;  // a digit after '=' or a stray character
      group = (group << 6) | static_cast<uint32_t>(d);
    }
    out.push_back(static_cast<char>(group >> 16));
    if (pad < 2) out.push_back(static_cast<char>((group >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(group & 0xFF));
  }
  return out;
}

PrecompiledCharsmap::PrecompiledCharsmap(std::string_view blob, std::string source) : source_(std::move(source)) {
  OMNI_CHECK(blob.size() >= 4, source_, ": the charsmap has ", blob.size(), " bytes, too few for its trie size");
  const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(blob[i])); };
  const uint32_t trie_bytes = byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24;
  OMNI_CHECK(trie_bytes % 4 == 0, source_, ": the charsmap's trie size ", trie_bytes, " is not a multiple of 4");
  OMNI_CHECK(trie_bytes > 0, source_, ": the charsmap's trie is empty");
  OMNI_CHECK(trie_bytes <= blob.size() - 4, source_, ": the charsmap's trie size ", trie_bytes,
             " is larger than the ", blob.size() - 4, " bytes that follow it");
  units_.resize(trie_bytes / 4);
  for (size_t i = 0; i < units_.size(); ++i) {
    const size_t at = 4 + 4 * i;
    units_[i] = byte(at) | byte(at + 1) << 8 | byte(at + 2) << 16 | byte(at + 3) << 24;
  }
  normalized_ = std::string(blob.substr(4 + trie_bytes));
  const size_t bad = utf8::first_invalid(normalized_);
  OMNI_CHECK(bad == normalized_.size(), source_, ": the charsmap's replacement strings are not valid UTF-8 (byte ",
             bad, " of them)");
}

std::optional<std::string_view> PrecompiledCharsmap::transform(std::string_view chunk) const {
  const auto unit_at = [&](size_t pos) {
    OMNI_CHECK(pos < units_.size(), source_, ": the charsmap's trie links to unit ", pos, ", past its ",
               units_.size(), " units");
    return units_[pos];
  };
  size_t node = offset(unit_at(0));
  for (char ch : chunk) {
    const auto c = static_cast<uint8_t>(ch);
    if (c == 0) break;
    node ^= c;
    const uint32_t unit = unit_at(node);
    if (label(unit) != c) return std::nullopt;
    node ^= offset(unit);
    if (has_leaf(unit)) {
      // The first (shortest) key found is the one HF uses.
      const size_t begin = value(unit_at(node));
      OMNI_CHECK(begin <= normalized_.size(), source_, ": the charsmap's trie points at byte ", begin,
                 " of its ", normalized_.size(), "-byte replacement strings");
      size_t end = begin;
      while (end < normalized_.size() && normalized_[end] != '\0') ++end;
      // The strings are valid UTF-8, so a character starts wherever a continuation byte does not.
      OMNI_CHECK(begin == normalized_.size() || (static_cast<uint8_t>(normalized_[begin]) & 0xC0) != 0x80, source_,
                 ": the charsmap's trie points inside a character of its replacement strings");
      return std::string_view(normalized_).substr(begin, end - begin);
    }
  }
  return std::nullopt;
}

std::string PrecompiledCharsmap::normalize(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  const std::vector<size_t> bounds = grapheme_boundaries(text);
  for (size_t g = 0; g + 1 < bounds.size(); ++g) {
    const std::string_view grapheme = text.substr(bounds[g], bounds[g + 1] - bounds[g]);
    if (grapheme.size() < 6) {
      if (const auto norm = transform(grapheme)) {
        out += *norm;
        continue;
      }
    }
    for (size_t pos = 0; pos < grapheme.size();) {
      const size_t len = utf8::step(grapheme, pos).length;
      const std::string_view part = grapheme.substr(pos, len);
      if (const auto norm = transform(part))
        out += *norm;
      else
        out += part;
      pos += len;
    }
  }
  return out;
}

}  // namespace omni
