// A tokenizer.json run the way HF `tokenizers` runs it, for the text encoders' tokenizers (CLIP, T5):
// added tokens (non-normalized ones cut from the raw text, then normalized ones from the normalized text),
// normalizer, pre-tokenizer, model (byte-level BPE with optional subword prefix / end-of-word suffix, or
// Unigram), then the post-processor's special tokens, truncation and padding.
//
// Supported post-processors: null, ByteLevel (adds nothing), RobertaProcessing and BertProcessing (cls ... sep),
// TemplateProcessing (its "single" template) and Sequence of those. Decoding is not provided: the text encoders
// only need ids. (Qwen's chat tokenizer is the separate Tokenizer class of tokenizer.h.)
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace omni {

// Ids for a fixed-length text encoder input, as transformers' tokenizer(text, padding="max_length",
// max_length=N, truncation=True) gives them.
struct PaddedIds {
  std::vector<int32_t> ids;  // exactly max_length: specials, the text's first tokens, then padding
  size_t length = 0;         // tokens of the whole text with its specials, before truncation and padding
  bool truncated() const { return length > ids.size(); }
};

class TokenizerPipeline {
 public:
  // `root` has the tokenizer.json layout; `source` names the file in errors.
  static TokenizerPipeline from_json(const nlohmann::json& root, const std::string& source);

  // The text's ids without the post-processor's tokens. text must be valid UTF-8 (omni::Error naming the byte
  // offset otherwise). Thread-safe.
  std::vector<int32_t> encode(std::string_view text) const;
  // With the post-processor's tokens, untruncated.
  std::vector<int32_t> encode_with_specials(std::string_view text) const;
  // Truncates the text's ids so that they and the specials fit max_length (the specials are kept: eos stays
  // last), then pads with pad_id on the right. max_length must hold the specials.
  PaddedIds encode_padded(std::string_view text, size_t max_length, int32_t pad_id) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;  // added tokens first, then the model's
  const std::vector<int32_t>& prefix_ids() const;  // post-processor tokens before the text (CLIP: bos)
  const std::vector<int32_t>& suffix_ids() const;  // and after it (CLIP, T5: eos)
  const std::string& source() const;

 private:
  struct Impl;
  explicit TokenizerPipeline(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable after loading (the BPE cache locks internally)
};

}  // namespace omni
