#include "io/tokenizers/byte_level.h"

#include "io/tokenizers/utf8.h"

namespace omni::byte_level {
namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 512> to_byte{};  // every alphabet character is below U+0144

  Tables() {
    to_byte.fill(-1);
    const auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = printable(b) ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return tables().to_char[b]; }

std::optional<uint8_t> char_to_byte(char32_t c) {
  if (c >= tables().to_byte.size() || tables().to_byte[c] < 0) return std::nullopt;
  return static_cast<uint8_t>(tables().to_byte[c]);
}

std::string encode(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  for (char c : raw) utf8::append(out, byte_to_char(static_cast<uint8_t>(c)));
  return out;
}

std::optional<std::string> decode(std::string_view token) {
  std::string out;
  size_t pos = 0;
  while (pos < token.size()) {
    const utf8::Step st = utf8::step(token, pos);
    if (st.kind != utf8::Step::kValid) return std::nullopt;
    const auto b = char_to_byte(st.code_point);
    if (!b) return std::nullopt;
    out.push_back(static_cast<char>(*b));
    pos += st.length;
  }
  return out;
}

}  // namespace omni::byte_level
