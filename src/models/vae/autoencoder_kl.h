// Opens the decoder of a diffusers AutoencoderKL folder (vae/: config.json + diffusion_pytorch_model*.safetensors).
// The config reader refuses what the decoder does not run (other block types or activations, a post-quant conv,
// a group count that does not divide every width), each error naming the file and the field. Fields left out of
// config.json take diffusers' defaults, as from_pretrained gives them.
#pragma once

#include <memory>
#include <string>

#include "nn/vae_decoder.h"

namespace omni {

VaeDecoderSpec read_autoencoder_kl_config(const std::string& vae_dir);
std::unique_ptr<VaeDecoder> open_vae_decoder(const std::string& vae_dir, Backend& backend);

}  // namespace omni
