// What defines a FLUX-architecture transformer (diffusers' FluxTransformer2DModel): sizes from its config.json
// (parsed by models/flux/flux_config.cpp) and the constants the architecture fixes.
#pragma once

#include <array>
#include <cstdint>

namespace omni {

struct FluxSpec {
  int64_t num_heads = 24;               // num_attention_heads
  int64_t head_dim = 128;               // attention_head_dim
  int64_t num_layers = 19;              // double-stream blocks (transformer_blocks)
  int64_t num_single_layers = 38;       // single-stream blocks (single_transformer_blocks)
  int64_t in_channels = 64;             // packed latent channels (16 × 2 × 2)
  int64_t out_channels = 64;
  int64_t joint_attention_dim = 4096;   // T5 d_model
  int64_t pooled_projection_dim = 768;  // CLIP hidden size
  bool guidance_embeds = true;          // FLUX.1-dev: a guidance embedding beside the timestep's
  std::array<int64_t, 3> axes_dims_rope{16, 56, 56};  // per-axis rotary dims, summing to head_dim

  // Fixed by the architecture.
  static constexpr float kNormEps = 1e-6f;          // every LayerNorm and the per-head q/k RMSNorms
  static constexpr int64_t kMlpRatio = 4;           // MLP hidden = 4 · D
  static constexpr int64_t kTimestepChannels = 256;  // sinusoidal timestep / guidance projection
  static constexpr double kRopeTheta = 10000.0;

  int64_t inner_dim() const { return num_heads * head_dim; }
  int64_t mlp_dim() const { return kMlpRatio * inner_dim(); }
};

}  // namespace omni
