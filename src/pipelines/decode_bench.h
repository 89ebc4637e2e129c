// `omniround bench decode`: prefill and decode speed of a model on random prompts, repeated, with the bytes a
// decode step reads, so the speed can be put against the memory bandwidth (the roofline of decode).
#pragma once

#include <cstdint>
#include <vector>

#include "nn/causal_lm.h"

namespace omni {

struct DecodeBenchOptions {
  int64_t prompt_tokens = 64;   // prefill length
  int64_t decode_tokens = 128;  // timed decode steps after the prefill (greedy, no stop token)
  int repeats = 5;              // timed runs, after one untimed warm-up run
  uint64_t seed = 0;            // prompt ids are drawn uniformly from the vocabulary
};

struct DecodeBenchResult {
  std::vector<double> prefill_tokens_per_second;  // one per run
  std::vector<double> decode_tokens_per_second;
  int64_t weight_bytes_per_token = 0;  // every Linear's weights, the LM head included, read once per step
  int64_t kv_bytes_per_token = 0;      // keys and values read by attention, mean over the decode steps

  static double median(std::vector<double> v);
};

DecodeBenchResult bench_decode(CausalLM& model, const DecodeBenchOptions& options);

}  // namespace omni
