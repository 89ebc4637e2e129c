// What generation, evaluation and the CLI need of a causal language model, whatever its architecture: a batched
// forward over a KV cache of sequence slots. Architectures are opened through the registry (models/registry.h).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/token_batch.h"

namespace omni {

struct CausalLmInfo {
  std::string architecture;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t max_positions = 0;
  std::vector<int32_t> eos_token_ids;
  int32_t bos_token_id = -1;
};

// How the checkpoint stores its Linear layers, for `inspect` and logs.
struct LoadReport {
  int64_t quantized_linears = 0;
  int64_t dense_linears = 0;
  std::string quant_format;  // "" for a 16-bit checkpoint
  // How the backend holds the Linears (PreparedLinear::layout(), e.g. "w4a16", "dense BF16"), with counts.
  std::map<std::string, int64_t> linear_layouts;
  int64_t linear_weight_bytes = 0;  // Σ PreparedLinear::weight_bytes, the LM head included
  // "56 w4a16, 1 dense BF16"
  std::string layouts_summary() const {
    std::string s;
    for (const auto& [layout, n] : linear_layouts) s += (s.empty() ? "" : ", ") + std::to_string(n) + " " + layout;
    return s;
  }
};

// Keys and values of every layer for `slots` sequences: per layer [slots, capacity, Hkv, head_dim] in the
// backend's activation dtype; length[s] positions of slot s are filled. (A paged cache plugs in here later.)
struct KvCache {
  std::vector<Tensor> k, v;
  std::vector<int64_t> length;
  int64_t capacity = 0;
  int64_t slots() const { return static_cast<int64_t>(length.size()); }
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const CausalLmInfo& info() const = 0;
  virtual const LoadReport& load_report() const = 0;

  // A cache for `slots` sequences of up to `capacity` tokens each (checked against the model's context and
  // against overflow before anything is allocated).
  virtual KvCache new_cache(int64_t capacity, int64_t slots = 1) const = 0;

  // Runs every token of the batch. A sequence's tokens must continue it: in batch order, positions
  // length[s], length[s] + 1, ... Returns F32 CPU logits [rows with output set, V] in batch order. If
  // `hidden_states` is given it receives L + 1 CPU tensors [N, D]: the embeddings, then the raw output of each
  // block (before the final norm).
  virtual Tensor forward(const TokenBatch& batch, KvCache& cache, std::vector<Tensor>* hidden_states = nullptr) = 0;

  // One sequence in slot `slot`, continuing it: logits [T, V] when all_logits, else [1, V] for the last token.
  Tensor forward(std::span<const int32_t> ids, KvCache& cache, bool all_logits,
                 std::vector<Tensor>* hidden_states = nullptr, int32_t slot = 0);
};

}  // namespace omni
