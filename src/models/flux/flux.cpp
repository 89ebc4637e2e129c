#include "models/flux/flux.h"

#include "models/flux/flux_config.h"

namespace omni {

std::unique_ptr<FluxTransformer> open_flux_transformer(const std::string& transformer_dir, Backend& backend) {
  return FluxTransformer::open(transformer_dir, read_flux_transformer_config(transformer_dir), backend);
}

}  // namespace omni
