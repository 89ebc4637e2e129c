#include "io/tokenizers/utf8.h"

namespace omni::utf8 {

Step step(std::string_view s, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t lead = byte(pos);
  if (lead < 0x80) return {Step::kValid, lead, 1};

  // Well-formed sequences (Unicode table 3-7): the lead byte fixes the length and the allowed range of the
  // second byte; later bytes are always 80..BF. Overlongs, surrogates and > U+10FFFF fall outside these ranges.
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;
  char32_t cp;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2, cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3, cp = lead & 0x0F;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4, cp = lead & 0x07;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return {Step::kInvalid, 0, 1};
  }
  for (size_t k = 1; k < need; ++k) {
    if (pos + k >= s.size()) return {Step::kIncomplete, 0, k};
    const uint8_t b = byte(pos + k);
    if (b < lo || b > hi) return {Step::kInvalid, 0, k};
    lo = 0x80, hi = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Step::kValid, cp, need};
}

size_t first_invalid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    // ASCII runs dominate real text; skip them without the full step.
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Step st = step(s, pos);
    if (st.kind != Step::kValid) return pos;
    pos += st.length;
  }
  return s.size();
}

std::string to_valid_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    const Step st = step(s, pos);
    if (st.kind == Step::kValid)
      out.append(s.substr(pos, st.length));
    else
      out.append("\xEF\xBF\xBD");  // U+FFFD
    pos += st.length;
  }
  return out;
}

size_t complete_prefix_length(std::string_view s) {
  // Scans from the start because only a full scan knows where sequences begin; streaming callers keep s short
  // (the undecoded tail of at most 3 bytes plus one token's bytes).
  size_t pos = 0;
  while (pos < s.size()) {
    const Step st = step(s, pos);
    if (st.kind == Step::kIncomplete) return pos;
    pos += st.length;
  }
  return s.size();
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace omni::utf8
