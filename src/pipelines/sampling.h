// Next-token sampling from logits: greedy, or temperature → top-k → top-p (nucleus) → a seeded draw.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace omni {

struct SamplingParams {
  float temperature = 0.0f;  // 0 (or below): greedy
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
};

// Reproducible: the same params (seed included) and the same logits give the same tokens on every platform.
// The draw uses std::mt19937_64 (fully specified by the standard) and turns its output into a uniform u in
// [0, 1) as (x >> 11) · 2⁻⁵³ itself, because std::uniform_real_distribution differs between libraries.
// Ties: greedy picks the lowest index; top-k keeps lower indices first among equal logits.
class Sampler {
 public:
  explicit Sampler(SamplingParams params);
  int32_t sample(std::span<const float> logits);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  // candidate scratch
  std::vector<double> probs_;
};

// Index of the largest logit, lowest index on ties (NaN never wins).
int32_t argmax_logit(std::span<const float> logits);

}  // namespace omni
