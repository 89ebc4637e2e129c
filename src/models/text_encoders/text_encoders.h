// The text encoders of the diffusion pipelines (FLUX's text_encoder/ and text_encoder_2/): their transformers
// config.json read into a spec, refusing what the implementation does not run (another architecture or
// activation, a T5 without the gated GELU), each error naming the file and the field; and the folders opened.
#pragma once

#include <memory>
#include <string>

#include "nn/clip_text_encoder.h"
#include "nn/t5_encoder.h"

namespace omni {

// CLIPTextConfig (model_type "clip_text_model", architectures CLIPTextModel), hidden_act quick_gelu.
ClipTextSpec read_clip_text_config(const std::string& dir);
// T5Config of a T5EncoderModel (model_type "t5"), feed_forward_proj "gated-gelu" (t5 v1.1, FLUX).
T5EncoderSpec read_t5_encoder_config(const std::string& dir);

std::unique_ptr<ClipTextEncoder> open_clip_text_encoder(const std::string& dir, Backend& backend);
std::unique_ptr<T5Encoder> open_t5_encoder(const std::string& dir, Backend& backend);

}  // namespace omni
