#include "io/tokenizers/unicode_normalize.h"

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

#include "core/error.h"

namespace omni {
namespace {

const UNormalizer2* nfc_instance() {
  static const UNormalizer2* instance = [] {
    UErrorCode status = U_ZERO_ERROR;
    const UNormalizer2* n = unorm2_getNFCInstance(&status);
    OMNI_CHECK(U_SUCCESS(status) && n, "ICU: cannot load the NFC normalizer data: ", u_errorName(status));
    return n;
  }();
  return instance;
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

std::string to_nfc(std::string_view utf8_text) {
  bool ascii = true;
  for (char c : utf8_text) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) return std::string(utf8_text);  // ASCII is always in NFC

  const UNormalizer2* nfc = nfc_instance();
  const std::u16string in = utf8_to_utf16(utf8_text);
  UErrorCode status = U_ZERO_ERROR;
  const int32_t ok_prefix = unorm2_spanQuickCheckYes(nfc, in.data(), static_cast<int32_t>(in.size()), &status);
  OMNI_CHECK(U_SUCCESS(status), "NFC normalization: ICU quick check failed: ", u_errorName(status));
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
    OMNI_CHECK(U_SUCCESS(status), "NFC normalization: ICU failed: ", u_errorName(status));
    out.resize(static_cast<size_t>(len));
    return utf16_to_utf8(out);
  }
}

}  // namespace omni
