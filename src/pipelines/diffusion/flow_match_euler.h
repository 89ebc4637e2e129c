// The flow-matching Euler sampler of FLUX (diffusers' FlowMatchEulerDiscreteScheduler as FluxPipeline drives it,
// ../shared/docs/reference/flux.md §2.3–2.4), as host arithmetic that reproduces diffusers' float32 values:
//   σ_lin = linspace(1, 1/N, N) in float64, rounded to float32;
//   σ = e^μ / (e^μ + (1/σ_lin − 1))   (dynamic shifting, "exponential"; "linear": μ / (μ + (1/σ_lin − 1))),
//       μ = image_seq_len · m + b on the line through (base_image_seq_len, base_shift), (max_image_seq_len,
//       max_shift);
//   σ = s·σ_lin / (1 + (s − 1)·σ_lin)  (static shift s, without dynamic shifting);
//   timesteps = 1000·σ (num_train_timesteps·σ), then a terminal σ_N = 0;
//   step i: x ← x + (σ_{i+1} − σ_i)·v.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace omni {

// scheduler/scheduler_config.json. Fields left out take diffusers' defaults.
struct FlowMatchEulerConfig {
  enum class TimeShift { Exponential, Linear };
  int64_t num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5;
  double max_shift = 1.15;
  int64_t base_image_seq_len = 256;
  int64_t max_image_seq_len = 4096;
  TimeShift time_shift = TimeShift::Exponential;
};

// Reads scheduler_dir/scheduler_config.json; refuses what this sampler does not compute (Karras, exponential or
// beta sigmas, inverted sigmas, a terminal shift, stochastic sampling, another scheduler class), naming the file
// and the field.
FlowMatchEulerConfig read_flow_match_euler_config(const std::string& scheduler_dir);

// FluxPipeline's calculate_shift: μ for an image of image_seq_len latent tokens (4096 at 1024², giving max_shift).
double flux_time_shift_mu(const FlowMatchEulerConfig& config, int64_t image_seq_len);

class FlowMatchEulerScheduler {
 public:
  explicit FlowMatchEulerScheduler(const FlowMatchEulerConfig& config);

  // The schedule of `steps` steps for an image of image_seq_len tokens (the packed latents' sequence length).
  void set_timesteps(int64_t steps, int64_t image_seq_len);

  const FlowMatchEulerConfig& config() const { return config_; }
  int64_t num_steps() const { return static_cast<int64_t>(timesteps_.size()); }
  const std::vector<float>& sigmas() const { return sigmas_; }        // steps + 1, the last 0
  const std::vector<float>& timesteps() const { return timesteps_; }  // steps: what the transformer is told (/1000)

  // Step i (0 ≤ i < num_steps) in place: sample ← sample + (σ_{i+1} − σ_i)·velocity for host tensors of one
  // shape and one float dtype (the model's). F32: the product and the sum rounded to f32, as diffusers computes
  // them. BF16/F16, as diffusers computes them for a 16-bit model: dt and the product are rounded to that dtype,
  // the sum is taken in f32 and rounded once.
  void step(int64_t i, Tensor& sample, const Tensor& velocity) const;

 private:
  FlowMatchEulerConfig config_;
  std::vector<float> sigmas_, timesteps_;
};

}  // namespace omni
