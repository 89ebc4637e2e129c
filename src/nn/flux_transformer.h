// The FLUX transformer (diffusers' FluxTransformer2DModel) for inference: the embeddings of the latents, the T5
// text states, the timestep, the guidance and the pooled CLIP vector; the double- and single-stream blocks of
// flux_blocks.h; the final adaLN and projection. One forward predicts the flow-matching velocity of the packed
// latents (../shared/docs/reference/flux.md §1.6).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "nn/causal_lm.h"
#include "nn/flux_spec.h"

namespace omni {

class CheckpointLinears;
class NamedTensors;

struct FluxInputs {
  Tensor hidden_states;          // [B, Ni, in_channels] packed latents (host, float)
  Tensor encoder_hidden_states;  // [B, Nt, joint_attention_dim] T5 output (host, float)
  Tensor pooled_projections;     // [B, pooled_projection_dim] CLIP pooled output (host, float)
  std::vector<float> timestep;   // [B] σ in [0, 1] (the pipeline's timestep / 1000)
  std::vector<float> guidance;   // [B] guidance scale; required exactly when the model has guidance_embeds
  Tensor img_ids;                // [Ni, 3] (0, row, column) of each image token (host, float)
  Tensor txt_ids;                // [Nt, 3], zeros for text-to-image (host, float)
};

// What a forward computed on the way, as CPU F32 tensors (golden tests; the calibration capture builds on it).
struct FluxTrace {
  Tensor temb;                                // [B, D]
  std::vector<Tensor> block_img, block_txt;   // the outputs of every block, double blocks first
};

class FluxTransformer {
 public:
  // transformer_dir: diffusion_pytorch_model*.safetensors, dense or quantized (the quantization_config of its
  // config.json); spec: that config.json, read by models/flux (open_flux_transformer).
  static std::unique_ptr<FluxTransformer> open(const std::string& transformer_dir, const FluxSpec& spec,
                                               Backend& backend);
  // Random weights of spec's shapes (benchmarks at full size without a checkpoint, nn/random_weights.h): BF16, or
  // with w4a16 every block Linear 4-bit in groups of 128 as a quantized checkpoint stores it.
  static std::unique_ptr<FluxTransformer> random(const FluxSpec& spec, Backend& backend, uint64_t seed, bool w4a16);
  ~FluxTransformer();

  const FluxSpec& spec() const;
  const LoadReport& load_report() const;
  // The velocity [B, Ni, out_channels] as a CPU F32 tensor.
  Tensor forward(const FluxInputs& in, FluxTrace* trace = nullptr);
  // Called by every later forward with the first double block's inputs, on the backend in its activation dtype
  // ("img" [B, Ni, D], "txt" [B, Nt, D], "temb" [B, D], "rope_cos"/"rope_sin" F32 [B·L, hd]): AutoRound's
  // calibration capture watches the denoising loop through it. An empty function removes the observer.
  void set_block_input_observer(std::function<void(const NamedTensors&)> observer);

  // Rotary tables of the joint sequence [txt; img] for ids [L, 3] (float64 angles, as diffusers computes them
  // off Apple/NPU devices, rounded to F32): cos and sin [L, head_dim], each frequency repeated for its pair.
  static void rotary_tables(const FluxSpec& spec, const Tensor& ids, Tensor& cos, Tensor& sin);
  // The sinusoidal projection of Timesteps(256, flip_sin_to_cos=True, shift 0) of t (already × 1000): [B, 256].
  static Tensor timestep_projection(const std::vector<float>& t);

 private:
  struct Impl;
  explicit FluxTransformer(std::unique_ptr<Impl> impl);
  // Reads every weight of impl's spec from ck onto impl's backend.
  static void load(Impl& impl, CheckpointLinears& ck);
  std::unique_ptr<Impl> impl_;
};

}  // namespace omni
