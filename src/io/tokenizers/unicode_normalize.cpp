#include "io/tokenizers/unicode_normalize.h"

#include <unicode/ubrk.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utext.h>
#include <unicode/utf16.h>

#include <vector>

#include "core/error.h"
#include "io/tokenizers/utf8.h"

namespace omni {
namespace {

const UNormalizer2* normalizer_instance(NormalForm form) {
  static const UNormalizer2* instances[4] = {};
  static const bool loaded = [] {
    const char* names[4] = {"NFC", "NFD", "NFKC", "NFKD"};
    for (int i = 0; i < 4; ++i) {
      UErrorCode status = U_ZERO_ERROR;
      switch (i) {
        case 0: instances[i] = unorm2_getNFCInstance(&status); break;
        case 1: instances[i] = unorm2_getNFDInstance(&status); break;
        case 2: instances[i] = unorm2_getNFKCInstance(&status); break;
        default: instances[i] = unorm2_getNFKDInstance(&status); break;
      }
      OMNI_CHECK(U_SUCCESS(status) && instances[i], "ICU: cannot load the ", names[i],
                 " normalizer data: ", u_errorName(status));
    }
    return true;
  }();
  (void)loaded;
  return instances[static_cast<int>(form)];
}

std::u16string utf8_to_utf16(std::string_view s) {
  std::u16string out(s.size(), u'\0');  // UTF-16 never needs more code units than UTF-8 has bytes
  int32_t len = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strFromUTF8(out.data(), static_cast<int32_t>(out.size()), &len, s.data(), static_cast<int32_t>(s.size()),
                &status);
  OMNI_CHECK(U_SUCCESS(status), "NFC normalization: text is not valid UTF-8 (ICU: ", u_errorName(status), ")");
  out.resize(static_cast<size_t>(len));
  return out;
}

std::string utf16_to_utf8(const std::u16string& s) {
  std::string out(s.size() * 3, '\0');  // each UTF-16 unit becomes at most 3 UTF-8 bytes
  int32_t len = 0;
  UErrorCode status = U_ZERO_ERROR;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &len, s.data(), static_cast<int32_t>(s.size()),
              &status);
  OMNI_CHECK(U_SUCCESS(status), "NFC normalization: ICU output conversion failed: ", u_errorName(status));
  out.resize(static_cast<size_t>(len));
  return out;
}

}  // namespace

std::string to_nfc(std::string_view utf8_text) { return to_normal_form(utf8_text, NormalForm::kNfc); }

std::string to_normal_form(std::string_view utf8_text, NormalForm form) {
  bool ascii = true;
  for (char c : utf8_text) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) return std::string(utf8_text);  // ASCII is in every normal form

  const UNormalizer2* nfc = normalizer_instance(form);
  const std::u16string in = utf8_to_utf16(utf8_text);
  UErrorCode status = U_ZERO_ERROR;
  const int32_t ok_prefix = unorm2_spanQuickCheckYes(nfc, in.data(), static_cast<int32_t>(in.size()), &status);
  OMNI_CHECK(U_SUCCESS(status), "Unicode normalization: ICU quick check failed: ", u_errorName(status));
  if (static_cast<size_t>(ok_prefix) == in.size()) return std::string(utf8_text);

  // Normalize the whole text (the unchanged prefix is short enough not to be worth splitting off).
  std::u16string out(in.size() * 2 + 16, u'\0');
  for (;;) {
    status = U_ZERO_ERROR;
    const int32_t len = unorm2_normalize(nfc, in.data(), static_cast<int32_t>(in.size()), out.data(),
                                         static_cast<int32_t>(out.size()), &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
      out.assign(static_cast<size_t>(len) + 1, u'\0');
      continue;
    }
    OMNI_CHECK(U_SUCCESS(status), "Unicode normalization: ICU failed: ", u_errorName(status));
    out.resize(static_cast<size_t>(len));
    return utf16_to_utf8(out);
  }
}

std::string to_lowercase(std::string_view utf8_text) {
  std::string out;
  out.reserve(utf8_text.size());
  for (size_t pos = 0; pos < utf8_text.size();) {
    const auto c = static_cast<unsigned char>(utf8_text[pos]);
    if (c < 0x80) {  // ASCII: the common case, no ICU call
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      ++pos;
      continue;
    }
    const utf8::Step st = utf8::step(utf8_text, pos);
    OMNI_CHECK(st.kind == utf8::Step::kValid, "lowercase: text is not valid UTF-8 at byte ", pos);
    // One code point alone, so no context-dependent rule (final sigma) applies, as with char::to_lowercase.
    UChar in[2], lower[8];
    int32_t in_len = 0;
    U16_APPEND_UNSAFE(in, in_len, static_cast<UChar32>(st.code_point));
    UErrorCode status = U_ZERO_ERROR;
    const int32_t len = u_strToLower(lower, 8, in, in_len, "", &status);
    OMNI_CHECK(U_SUCCESS(status), "lowercase: ICU failed: ", u_errorName(status));
    out += utf16_to_utf8(std::u16string(reinterpret_cast<const char16_t*>(lower), static_cast<size_t>(len)));
    pos += st.length;
  }
  return out;
}

std::vector<size_t> grapheme_boundaries(std::string_view utf8_text) {
  std::vector<size_t> bounds{0};
  if (utf8_text.empty()) return bounds;
  UErrorCode status = U_ZERO_ERROR;
  UText* text = utext_openUTF8(nullptr, utf8_text.data(), static_cast<int64_t>(utf8_text.size()), &status);
  UBreakIterator* it = ubrk_open(UBRK_CHARACTER, "", nullptr, 0, &status);
  if (U_SUCCESS(status)) ubrk_setUText(it, text, &status);
  const bool ok = U_SUCCESS(status);
  const std::string error = u_errorName(status);
  if (ok) {
    // The UTF-8 UText reports native (byte) offsets.
    for (int32_t b = ubrk_next(it); b != UBRK_DONE; b = ubrk_next(it)) bounds.push_back(static_cast<size_t>(b));
  }
  if (it) ubrk_close(it);
  utext_close(text);
  OMNI_CHECK(ok, "grapheme segmentation: ICU failed: ", error);
  if (bounds.back() != utf8_text.size()) bounds.push_back(utf8_text.size());
  return bounds;
}

}  // namespace omni
