// Text <-> token ids for Hugging Face `tokenizer.json` byte-level BPE tokenizers (Qwen2/Qwen3, GPT-2 style),
// matching the `tokenizers` library id for id.
//
// Encoding, as `tokenizers` does it:
//   1. added tokens with "normalized": false are cut out of the raw text (longest match first, lstrip/rstrip
//      honoured); they become their ids directly;
//   2. each remaining stretch is normalized (NFC, via ICU) and added tokens with "normalized": true are cut out;
//   3. the pre-tokenizer splits it (Split regexes in PCRE2, then ByteLevel, optionally with its GPT-2 regex);
//   4. each piece goes through the BPE merges (cached per piece).
// Supported: model BPE; normalizer null / NFC / Sequence of NFC; pre_tokenizer ByteLevel or Sequence of Split
// (behavior Isolated) steps ending in ByteLevel; decoder ByteLevel. Anything else is refused with an error naming
// the file and the field. The post_processor is not applied: encode() returns the text's own ids and adds no
// template tokens (Qwen's ByteLevel post-processor adds none either).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace omni {

class Tokenizer {
 public:
  // Loads tokenizer.json. eos_ids() are then the special tokens "<|endoftext|>" and "<|im_end|>" if present.
  static Tokenizer from_file(const std::string& path);
  // The same from tokenizer.json's text; `source` names it in errors and is what source() returns.
  static Tokenizer from_json_text(std::string_view text, const std::string& source);
  // Loads dir/tokenizer.json; eos_ids() come from dir/tokenizer_config.json ("eos_token"), dir/generation_config.json
  // ("eos_token_id", if the file exists) and "<|im_end|>" when it is a special token (ChatML's end of turn).
  static Tokenizer from_dir(const std::string& dir);

  // text must be valid UTF-8 (omni::Error naming the byte offset otherwise). Thread-safe.
  std::vector<int32_t> encode(std::string_view text) const;
  // Ids without a token (e.g. padding rows of a model's embedding) decode to nothing, as in `tokenizers`.
  // Bytes that do not form valid UTF-8 become U+FFFD.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  int32_t vocab_size() const;  // largest id + 1, over the model vocabulary and the added tokens
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // the stored token string (byte-level form); throws for an unknown id
  std::vector<int32_t> eos_ids() const;
  bool is_special(int32_t id) const;
  // The raw bytes the decoder produces for one id (empty for an unknown id).
  std::string_view token_bytes(int32_t id) const;
  const std::string& source() const;  // the tokenizer.json path, for messages

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable after loading (the BPE cache locks internally), so copies share it
};

// Turns ids into text as they are generated, emitting only complete UTF-8 characters: a character split over
// several byte tokens comes out once its last byte arrives. The concatenation of all push() results and finish()
// equals Tokenizer::decode of the same ids.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(Tokenizer tokenizer, bool skip_special = false)
      : tokenizer_(std::move(tokenizer)), skip_special_(skip_special) {}
  std::string push(int32_t id);
  std::string finish();  // flushes an unfinished character (as U+FFFD) and resets

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  std::string pending_;  // bytes of an unfinished character
};

}  // namespace omni
