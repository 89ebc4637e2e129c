// Any Llama-family decoder-only LM (DecoderSpec) as a CausalLM: embeddings, the blocks (nn/decoder_block), the
// final norm and the LM head, run on a Backend with its activation dtype, over a token batch and a shared KV
// cache. Weights are read by their checkpoint names (spec.names): BF16/F16/F32, or W4A16 in the auto_round /
// auto_gptq formats, each Linear prepared once for the backend.
#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"
#include "nn/causal_lm.h"
#include "nn/decoder_spec.h"

namespace omni {

// Loads the weights of `dir` for `spec` onto `backend` (which must outlive the model). Every tensor is checked
// (present, shape, dtype) with errors naming it.
std::unique_ptr<CausalLM> load_decoder_lm(const std::string& dir, const DecoderSpec& spec, Backend& backend);

}  // namespace omni
