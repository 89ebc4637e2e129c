// Text to image with a whole diffusers FLUX folder (what `omniround image` runs): the prompt through both
// tokenizers and text encoders (tokenizer/ + text_encoder/ CLIP for the pooled vector, tokenizer_2/ +
// text_encoder_2/ T5 for the sequence), then FluxPipeline's denoising loop and VAE decode.
//
// As diffusers' FluxPipeline.encode_prompt: CLIP reads the prompt padded/truncated to 77 tokens and gives its
// pooled output; T5 reads it padded to max_sequence_length and gives last_hidden_state. Unlike diffusers, a
// prompt longer than T5 takes is an error (diffusers truncates it silently and the end of the prompt is lost);
// CLIP, which only contributes the pooled vector, truncates as in diffusers and the result says so.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "pipelines/diffusion/flux_pipeline.h"

namespace omni {

struct FluxImageRequest {
  std::string prompt;
  std::string negative_prompt;  // used when sampling.true_cfg_scale > 1 (the empty prompt is a valid one)
  FluxSampling sampling;
  int64_t max_sequence_length = 512;  // T5 tokens (FLUX.1-dev 512, schnell 256)
};

struct FluxImageResult {
  RgbImage image;
  double encode_seconds = 0, denoise_seconds = 0, decode_seconds = 0;
  int64_t prompt_t5_tokens = 0;    // the prompt's own T5 tokens (with </s>), before padding
  int64_t prompt_clip_tokens = 0;  // the prompt's own CLIP tokens (with bos/eos), before truncation to 77
  bool clip_truncated = false;
};

class FluxTextToImage {
 public:
  // dir: a diffusers FluxPipeline folder with every component (model_index.json, transformer/, vae/,
  // scheduler/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/); a missing one is an error naming it.
  static std::unique_ptr<FluxTextToImage> open(const std::string& dir, Backend& backend);
  ~FluxTextToImage();

  FluxPipeline& pipeline();
  // The encoder outputs of one prompt (host F32): T5 sequence [max_sequence_length, d] and CLIP pooled [d'].
  // Throws when the prompt has more T5 tokens than max_sequence_length, naming both counts.
  FluxPromptEmbeds encode(const std::string& prompt, int64_t max_sequence_length, FluxImageResult* counts = nullptr);
  // Checks the request (sizes, steps, CFG, sequence length) before any work, then encodes, denoises and decodes.
  FluxImageResult generate(const FluxImageRequest& request,
                           const std::function<void(const FluxStepInfo&)>& on_step = {});

 private:
  struct Impl;
  explicit FluxTextToImage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace omni
