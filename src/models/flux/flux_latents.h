// FluxPipeline's latent layout (../shared/docs/reference/flux.md §2.2): the VAE's latents [B, C, h, w] travel
// through the transformer as tokens of 2×2 patches, [B, (h/2)·(w/2), 4·C], with (0, row, column) ids.
// Token (r, col) of the (h/2) × (w/2) grid is index r·(w/2) + col; its channel c·4 + dy·2 + dx holds latent
// channel c at (2r + dy, 2·col + dx). Host tensors; results are F32.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace omni {

// The latent height (or width) FluxPipeline uses for an image of `pixels`: 2 · (pixels / (2 · vae_scale_factor)),
// so that the latents split into 2×2 patches (1024 px and factor 8: 128).
int64_t flux_latent_size(int64_t pixels, int64_t vae_scale_factor);
// [B, C, h, w] → [B, (h/2)·(w/2), 4·C]; h and w must be even.
Tensor pack_flux_latents(const Tensor& latents);
// The inverse: [B, (h/2)·(w/2), 4·C] → [B, C, h, w] for the given latent h and w (even).
Tensor unpack_flux_latents(const Tensor& packed, int64_t h, int64_t w);
// img_ids [(h/2)·(w/2), 3]: (0, r, col) per token, row-major.
Tensor flux_latent_image_ids(int64_t h, int64_t w);

}  // namespace omni
