// The decoder of diffusers' AutoencoderKL (the FLUX VAE, ../shared/docs/reference/flux.md §2.6) for inference:
// latents [B, latent_channels, h, w] to an image [B, out_channels, h·f, w·f], f = 2^(blocks − 1):
//   conv_in → mid block (resnet, single-head attention over all positions, resnet) → up blocks (each
//   layers_per_block + 1 resnets, all but the last ending in a nearest ×2 upsample and a 3×3 conv) →
//   GroupNorm → SiLU → conv_out.
// A resnet is x + conv2(SiLU(GN2(conv1(SiLU(GN1(x)))))), through a 1×1 conv_shortcut when its width changes.
// Every GroupNorm has norm_num_groups groups and eps 1e-6; convolutions are 3×3 with padding 1. Weights are
// F32 on the backend (the convolutions') or prepared Linears (the attention's), activations NCHW in the
// backend's activation dtype.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "nn/causal_lm.h"

namespace omni {

class VaeTensors;

// What defines an AutoencoderKL decoder: the sizes of its config.json (read by models/vae/autoencoder_kl.cpp)
// and the latent scaling the pipeline applies before decoding.
struct VaeDecoderSpec {
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};  // the encoder's order; the decoder runs it reversed
  int64_t layers_per_block = 2;  // the decoder's up blocks have one resnet more
  int64_t latent_channels = 16;
  int64_t out_channels = 3;
  int64_t norm_num_groups = 32;
  bool mid_block_add_attention = true;
  double scaling_factor = 0.3611;
  double shift_factor = 0.1159;

  static constexpr float kNormEps = 1e-6f;  // every GroupNorm of the decoder

  // Pixels per latent position along each axis (8 for FLUX).
  int64_t scale_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }
};

// Intermediate outputs of a decode, as CPU F32 tensors (golden tests).
struct VaeTrace {
  Tensor conv_in, mid_block;
  std::vector<Tensor> up_blocks;
};

class VaeDecoder {
 public:
  // vae_dir: diffusion_pytorch_model*.safetensors holding the decoder.* tensors (others, the encoder's, are
  // ignored). The attention accepts diffusers' names (to_q, to_k, to_v, to_out.0) and the legacy ones (query,
  // key, value, proj_attn), as Linear [C, C] or 1×1 conv [C, C, 1, 1] weights.
  static std::unique_ptr<VaeDecoder> open(const std::string& vae_dir, const VaeDecoderSpec& spec, Backend& backend);
  // Random weights of spec's shapes (benchmarks at full size without a checkpoint).
  static std::unique_ptr<VaeDecoder> random(const VaeDecoderSpec& spec, Backend& backend, uint64_t seed);
  ~VaeDecoder();

  const VaeDecoderSpec& spec() const;
  // The image [B, out_channels, h·f, w·f] (nominally in [−1, 1]) of latents z [B, latent_channels, h, w] (host,
  // float), as a CPU F32 tensor. z is the decoder's input, already scaled (scale_latents).
  Tensor decode(const Tensor& z, VaeTrace* trace = nullptr);
  // What the pipeline feeds the decoder: z / scaling_factor + shift_factor elementwise, in f32 (host).
  Tensor scale_latents(const Tensor& latents) const;

 private:
  struct Impl;
  explicit VaeDecoder(std::unique_ptr<Impl> impl);
  static std::unique_ptr<VaeDecoder> load(const std::string& dir, const VaeDecoderSpec& spec, Backend& backend,
                                          VaeTensors& tensors);
  std::unique_ptr<Impl> impl_;
};

// The pipeline's image post-processing: image [B, C, H, W] (host, float, nominally in [−1, 1]) to U8 [B, H, W, C]
// by round_half_even(255 · clamp(x/2 + 1/2, 0, 1)) in f32 (diffusers' VaeImageProcessor.postprocess to PIL).
Tensor image_to_uint8(const Tensor& image);

}  // namespace omni
