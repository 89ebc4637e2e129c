// Opens a FLUX transformer folder (diffusers layout: transformer/config.json + diffusion_pytorch_model*.safetensors).
#pragma once

#include <memory>
#include <string>

#include "nn/flux_transformer.h"

namespace omni {

std::unique_ptr<FluxTransformer> open_flux_transformer(const std::string& transformer_dir, Backend& backend);

}  // namespace omni
