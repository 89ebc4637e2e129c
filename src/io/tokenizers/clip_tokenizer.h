// The CLIP tokenizer of FLUX (diffusers' `tokenizer/` folder, CLIP-L), with the ids transformers 5.17's
// CLIPTokenizer gives.
//
// transformers 5.17 builds CLIP's pipeline itself and takes only the vocabulary and merges from the files (from
// tokenizer.json when the folder has one, else vocab.json + merges.txt), so this does the same:
//   normalizer     NFC, then every run of whitespace becomes one space, then lowercase;
//   pre-tokenizer  CLIP's regex (specials, contractions, letter runs, single digits, other non-space runs; the
//                  whitespace between is dropped), then ByteLevel (GPT-2's regex inside each piece);
//   model          byte-level BPE whose word-final symbols carry "</w>", unknown symbols -> unk_token;
//   post           bos_token ... eos_token.
// Special tokens come from tokenizer_config.json / special_tokens_map.json (defaults: "<|startoftext|>", and
// "<|endoftext|>" for eos, unk and pad, as CLIPTokenizer's), with the flags of tokenizer.json's added_tokens or
// of added_tokens_decoder (FLUX.1-dev's are "normalized": true, so "<|STARTOFTEXT|>" in a prompt is bos).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizers/tokenizer_pipeline.h"

namespace omni {

class ClipTokenizer {
 public:
  static ClipTokenizer from_dir(const std::string& dir);

  // tokenizer(text, padding="max_length", max_length=N, truncation=True) as FluxPipeline calls it: bos, the
  // text's first N − 2 tokens, eos, then pad_id up to N. `length` is the untruncated count with bos and eos.
  PaddedIds encode_padded(std::string_view text, size_t max_length) const;
  PaddedIds encode_padded(std::string_view text) const { return encode_padded(text, max_length_); }
  std::vector<int32_t> encode(std::string_view text) const;  // bos, every token, eos (no truncation)

  size_t max_length() const { return max_length_; }  // model_max_length (77 for CLIP-L)
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  const TokenizerPipeline& pipeline() const { return pipeline_; }

 private:
  ClipTokenizer(TokenizerPipeline pipeline, size_t max_length, int32_t bos, int32_t eos, int32_t pad)
      : pipeline_(std::move(pipeline)), max_length_(max_length), bos_id_(bos), eos_id_(eos), pad_id_(pad) {}
  TokenizerPipeline pipeline_;
  size_t max_length_;
  int32_t bos_id_, eos_id_, pad_id_;
};

}  // namespace omni
