// The T5 tokenizer of FLUX (diffusers' `tokenizer_2/` folder, T5TokenizerFast), with the ids transformers 5.17's
// T5Tokenizer gives.
//
// transformers 5.17 builds T5's pipeline itself and takes only the vocabulary and the SentencePiece charsmap
// from tokenizer.json, so this does the same:
//   normalizer     the Precompiled charsmap of tokenizer.json's normalizer (alone, or inside a Sequence), if any;
//                  other normalizer steps of the file (Strip, Replace) are not applied, as transformers ignores them;
//   pre-tokenizer  WhitespaceSplit, then Metaspace ("▁", prepend_scheme always, split);
//   model          Unigram over the file's pieces, unk id 2, byte_fallback off (transformers fixes both);
//   post           the text's ids, then eos_token ("</s>").
// Added tokens: tokenizer.json's added_tokens, tokenizer_config.json's added_tokens_decoder, the eos/unk/pad
// tokens, additional_special_tokens / extra_special_tokens and <extra_id_0> .. <extra_id_{extra_ids−1}>.
// A folder with spiece.model but no tokenizer.json is refused: reading SentencePiece's protobuf is not done here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizers/tokenizer_pipeline.h"

namespace omni {

class T5Tokenizer {
 public:
  static T5Tokenizer from_dir(const std::string& dir);

  // tokenizer(text, padding="max_length", max_length=N, truncation=True) as FluxPipeline calls it with N =
  // max_sequence_length (512 for FLUX.1-dev, 256 for schnell): the text's first N − 1 tokens, eos, then pad_id.
  PaddedIds encode_padded(std::string_view text, size_t max_length) const;
  std::vector<int32_t> encode(std::string_view text) const;  // every token, then eos (no truncation)

  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  size_t model_max_length() const { return model_max_length_; }  // tokenizer_config.json's, 512 when absent
  const TokenizerPipeline& pipeline() const { return pipeline_; }

 private:
  T5Tokenizer(TokenizerPipeline pipeline, int32_t eos, int32_t pad, size_t model_max_length)
      : pipeline_(std::move(pipeline)), eos_id_(eos), pad_id_(pad), model_max_length_(model_max_length) {}
  TokenizerPipeline pipeline_;
  int32_t eos_id_, pad_id_;
  size_t model_max_length_;
};

}  // namespace omni
