// Autoregressive text generation over a causal LM: prefill the prompt, then decode one token at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "pipelines/sampling.h"
#include "nn/causal_lm.h"

namespace omni {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;  // forward over the prompt, including the first sampled token
  double decode_seconds = 0;   // every later token
  std::string stop_reason;     // "stop token", "max tokens" or "context full"

  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0; }
  double decode_tokens_per_second() const {
    return decode_seconds > 0 && generated_tokens > 1 ? (generated_tokens - 1) / decode_seconds : 0;
  }
};

// Calls on_token for every generated id as soon as it is sampled; returns the ids and timing.
GenerateStats generate(CausalLM& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                       const std::function<void(int32_t)>& on_token, std::vector<int32_t>* generated = nullptr);

}  // namespace omni
