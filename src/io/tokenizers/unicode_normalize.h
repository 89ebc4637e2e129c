// Unicode text operations for tokenizer normalizers (HF `tokenizers` "NFC", "NFKC", "Lowercase", ...), backed by
// ICU (Debian libicu-dev); the one place of this folder that calls ICU.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace omni {

// Returns the NFC form of valid UTF-8 text. Text that is already NFC (all ASCII, or passing ICU's quick check)
// is returned unchanged without a full normalization pass.
std::string to_nfc(std::string_view utf8_text);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// The given normal form of valid UTF-8 text (to_nfc is kNfc).
std::string to_normal_form(std::string_view utf8_text, NormalForm form);

// Lowercases each code point on its own with its full Unicode mapping ("İ" -> "i̇", "Σ" -> "σ" everywhere), as
// Rust's char::to_lowercase, which HF's Lowercase normalizer applies character by character.
std::string to_lowercase(std::string_view utf8_text);

// Byte offsets of the extended grapheme cluster boundaries of valid UTF-8 text, 0 and size() included (ICU's
// character break iterator; HF uses the Rust unicode-segmentation crate, which implements the same rules).
std::vector<size_t> grapheme_boundaries(std::string_view utf8_text);

}  // namespace omni
