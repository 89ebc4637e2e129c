// Unicode normalization for tokenizer normalizers (HF `tokenizers` "NFC" etc.), backed by ICU (Debian libicu-dev).
#pragma once

#include <string>
#include <string_view>

namespace omni {

// Returns the NFC form of valid UTF-8 text. Text that is already NFC (all ASCII, or passing ICU's quick check)
// is returned unchanged without a full normalization pass.
std::string to_nfc(std::string_view utf8_text);

}  // namespace omni
