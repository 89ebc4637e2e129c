// QuantizableModel for the FLUX transformer (diffusers' FluxTransformer2DModel): the double-stream blocks
// transformer_blocks.* first, then the single-stream single_transformer_blocks.*, as the forward runs them and as
// auto-round names them (block_name_to_quantize "transformer_blocks,single_transformer_blocks"). Every row of
// both streams counts in the block loss (no token predicts anything: the whole joint sequence is the output).
//
// Block 0's calibration inputs do not come from token ids: they are captured from the denoising loop
// (pipelines/diffusion/flux_calibration.h), so calibration_inputs() refuses, naming that path.
#pragma once

#include <memory>

#include "nn/flux_spec.h"
#include "nn/quantizable_model.h"

namespace omni {

std::unique_ptr<QuantizableModel> make_flux_quantizable(const FluxSpec& spec);

}  // namespace omni
