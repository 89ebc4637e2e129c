// QuantizableModel for any Llama-family decoder (DecoderSpec): every block is a DecoderBlock, calibration inputs
// are the token embeddings, and the loss skips each sample's last token (the reference's choice: it predicts
// nothing that the sample contains).
#pragma once

#include <memory>

#include "nn/decoder_spec.h"
#include "nn/quantizable_model.h"

namespace omni {

std::unique_ptr<QuantizableModel> make_decoder_quantizable(const DecoderSpec& spec);

}  // namespace omni
