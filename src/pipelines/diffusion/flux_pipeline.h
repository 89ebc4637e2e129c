// FLUX text-to-image (diffusers' FluxPipeline, ../shared/docs/reference/flux.md §2) from a diffusers folder:
// noise → packed latents → the denoising loop (transformer + flow-matching Euler, optional true CFG) → unpack →
// VAE decode → 8-bit RGB. Prompts enter as encoder outputs (T5 sequence, CLIP pooled vector); the text encoders
// and tokenizers plug in in front of this.
//
// True CFG (true_cfg_scale > 1 with a negative prompt): v = v_neg + scale · (v − v_neg), with the conditional and
// the unconditional branch run either one after the other (sequential) or as one forward of batch 2 (batched).
// The step loop computes both branches' velocities through one function, so a later split over two GPUs (each
// rank one branch, an all-gather of v per step) replaces only that function.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "io/image/png.h"
#include "pipelines/diffusion/flow_match_euler.h"

namespace omni {

class FluxTransformer;
class VaeDecoder;

enum class CfgMode { Sequential, Batched };
CfgMode parse_cfg_mode(const std::string& name);  // "sequential", "batched"
const char* cfg_mode_name(CfgMode mode);

struct FluxSampling {
  int64_t width = 1024, height = 1024;  // multiples of 16
  int64_t steps = 28;
  float guidance = 3.5f;        // the distilled guidance embedding (models with guidance_embeds)
  float true_cfg_scale = 1.0f;  // > 1 with a negative prompt: true classifier-free guidance
  CfgMode cfg = CfgMode::Sequential;
  uint64_t seed = 0;
};

// A prompt as the transformer takes it: T5's last_hidden_state [Nt, joint_attention_dim] and CLIP's pooled
// output [pooled_projection_dim] (host, float).
struct FluxPromptEmbeds {
  Tensor sequence, pooled;
};

struct FluxStepInfo {
  int64_t step = 0, steps = 0;
  double elapsed_seconds = 0;
};

class FluxPipeline {
 public:
  // dir: model_index.json with transformer/, vae/ and scheduler/ (the text encoders are not read here).
  static std::unique_ptr<FluxPipeline> open(const std::string& dir, Backend& backend);
  ~FluxPipeline();

  FluxTransformer& transformer();
  VaeDecoder& vae();
  const FlowMatchEulerConfig& scheduler_config() const;

  // Checks sizes, steps and the CFG settings against the model, naming the bad setting.
  void check(const FluxSampling& s, bool has_negative) const;
  // The latent grid [h, w] of an image of s.width × s.height.
  std::pair<int64_t, int64_t> latent_size(const FluxSampling& s) const;
  // Seeded standard-normal noise [1, latent_channels, h, w] (F32): Box–Muller over SplitMix64(seed) (core/rng.h),
  // u1 = (next() >> 11 + 1) / 2^53, u2 = (next() >> 11) / 2^53, z0 = sqrt(−2 ln u1) cos(2π u2), z1 = … sin(…),
  // in double, rounded to float; values in row-major order. The same seed gives the same noise everywhere.
  Tensor noise(const FluxSampling& s) const;

  // The denoising loop from packed latents [1, Ni, 64] (e.g. pack_flux_latents(noise(s))); returns the final
  // packed latents. `trace`, if given, receives the packed latents after every step (F32, host).
  Tensor denoise(const FluxSampling& s, const FluxPromptEmbeds& prompt, const FluxPromptEmbeds* negative,
                 Tensor packed_latents, std::vector<Tensor>* trace = nullptr,
                 const std::function<void(const FluxStepInfo&)>& on_step = {});
  // Unpack, scale, VAE decode and post-process: the image of final packed latents.
  RgbImage decode(const FluxSampling& s, const Tensor& packed_latents);

 private:
  struct Impl;
  explicit FluxPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace omni
