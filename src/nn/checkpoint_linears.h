// Reads a model's weights out of a safetensors checkpoint onto a backend, by name and expected shape: float
// parameters, and Linears that are either dense or quantized (GPTQ-convention qweight/qzeros/scales, with the
// checkpoint's quantization_config), prepared by the backend. Remembers what it read, so that the caller can
// refuse a checkpoint holding tensors the model does not use. Used by the FLUX transformer loader; the decoder
// loader (decoder_lm.cpp) has its own copy of the same steps, to be folded into this one.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "io/safetensors.h"
#include "nn/causal_lm.h"
#include "quant/quant_config.h"

namespace omni {

// Random weights in place of a checkpoint (benchmarks at real sizes, nn/random_weights.h): Linears whose name starts
// with one of quantized_prefixes are bits-bit in groups of group_size (those whose in_features split into whole
// groups), the rest dense BF16.
struct RandomWeightsOptions {
  uint64_t seed = 0;
  std::vector<std::string> quantized_prefixes;
  int bits = 4;
  int64_t group_size = 128;
};

class CheckpointLinears {
 public:
  // dir holds the weights (SafetensorsCheckpoint::open_dir(dir, stem)) and the config.json whose
  // quantization_config, if any, says how quantized Linears are stored.
  CheckpointLinears(const std::string& dir, const std::string& stem, Backend& backend, LoadReport& report);
  // Random weights of the asked shapes instead (dir() is "random weights"; unused() is empty).
  CheckpointLinears(const RandomWeightsOptions& random, Backend& backend, LoadReport& report);

  // A float tensor (F32/BF16/F16) of the expected shape, on the host (a view into the mapped file).
  Tensor dense(const std::string& name, const Shape& shape);
  // The same, converted to F32 and on the backend (norm weights).
  Tensor param_f32(const std::string& name, const Shape& shape);
  // y = x·Wᵀ (+ bias) prepared by the backend: prefix.qweight/... when present (quantized), else prefix.weight.
  std::shared_ptr<const PreparedLinear> linear(const std::string& prefix, int64_t in, int64_t out, bool bias);
  // Whether the checkpoint holds `name` (layouts that differ in naming: a prefix, a tied alias).
  bool contains(const std::string& name) const { return ckpt_ && ckpt_->contains(name); }
  // Names in the checkpoint that nothing read, sorted.
  std::vector<std::string> unused() const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  Backend& backend_;
  LoadReport& report_;
  std::optional<SafetensorsCheckpoint> ckpt_;  // absent with random weights
  std::optional<RandomWeightsOptions> random_;
  std::optional<QuantizationConfig> quant_;
  ZeroPointConvention zero_convention_{};
  std::set<std::string> used_;
};

}  // namespace omni
