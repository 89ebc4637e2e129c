// Qwen3ForCausalLM: decoder-only transformer with GQA, per-head RMSNorm on q and k, rotary embeddings and a
// SiLU-gated MLP. Reads like the architecture: config, weights by their checkpoint names, block forward.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "io/model_config.h"

namespace omni {

struct Qwen3Block {
  Tensor input_layernorm, post_attention_layernorm;  // [D]
  Tensor q_norm, k_norm;                              // [head_dim]
  std::shared_ptr<const PreparedLinear> q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

struct Qwen3Weights {
  Tensor embed_tokens;  // [V, D]
  Tensor final_norm;    // [D]
  std::shared_ptr<const PreparedLinear> lm_head;
  std::vector<Qwen3Block> blocks;
};

// Keys and values of every layer for one sequence: [1, capacity, Hkv, head_dim] each, rows [0, length) valid.
struct KvCache {
  std::vector<Tensor> k, v;
  int64_t length = 0;
  int64_t capacity = 0;
};

// How the checkpoint stores its Linear layers, for `inspect` and logs.
struct LoadReport {
  int64_t quantized_linears = 0;
  int64_t dense_linears = 0;
  std::string quant_format;  // "" for a 16-bit checkpoint
};

class Qwen3Model {
 public:
  // Loads config.json and the safetensors weights of `dir` (BF16/F16/F32, or W4A16 in auto_round / auto_gptq
  // formats) and prepares them for `backend`.
  static std::unique_ptr<Qwen3Model> load(const std::string& dir, Backend& backend);

  const Qwen3Config& config() const { return config_; }
  const LoadReport& load_report() const { return report_; }

  KvCache new_cache(int64_t capacity) const;

  // Runs `ids` at positions [cache.length, cache.length + T), appending to the cache. Returns F32 logits on the
  // CPU: [T, V] when all_logits, else [1, V] for the last token. If `hidden_states` is given it receives
  // L + 1 CPU tensors [T, D]: the embeddings, then the raw output of each block (before the final norm, also
  // for the last block; transformers' output_hidden_states normalises its last entry instead).
  Tensor forward(std::span<const int32_t> ids, KvCache& cache, bool all_logits,
                 std::vector<Tensor>* hidden_states = nullptr);

 private:
  Qwen3Model(Qwen3Config config, Qwen3Weights weights, Backend& backend, LoadReport report);
  void block_forward(const Qwen3Block& b, Tensor& x, const Tensor& positions, Tensor& k_cache, Tensor& v_cache,
                     int64_t start_pos);

  Qwen3Config config_;
  Qwen3Weights w_;
  Backend& backend_;
  LoadReport report_;
};

}  // namespace omni
