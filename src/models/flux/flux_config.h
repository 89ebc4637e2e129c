// Reads a diffusers FluxTransformer2DModel config (transformer/config.json) into a FluxSpec, refusing what this
// implementation does not run (patch_size other than 1, axes_dims_rope that do not sum to the head size), each
// error naming the file and the field.
#pragma once

#include <string>

#include "nn/flux_spec.h"

namespace omni {

FluxSpec read_flux_transformer_config(const std::string& transformer_dir);

}  // namespace omni
