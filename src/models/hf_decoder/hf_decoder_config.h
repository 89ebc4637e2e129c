// The config.json fields every Hugging Face Llama-family decoder shares (Qwen2, Qwen3, Llama, Mistral): sizes,
// RoPE, norms, tying, special tokens. Each architecture's parser calls this, then sets what is its own
// (q/k norm, biases, names).
#pragma once

#include "io/json_fields.h"
#include "nn/decoder_spec.h"

namespace omni {

// Fills the shared fields of `spec` from `r`; spec.architecture must already be set. Rejects unsupported
// features (scaled RoPE, sliding windows), inconsistent sizes and sizes above 2^31 - 1, naming the field.
void read_hf_decoder_fields(const FieldReader& r, DecoderSpec& spec);

}  // namespace omni
