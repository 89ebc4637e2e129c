#include "models/qwen3/qwen3_model.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "models/qwen3/qwen3_loader.h"

namespace omni {

Qwen3Model::Qwen3Model(Qwen3Config config, Qwen3Weights weights, Backend& backend, LoadReport report)
    : config_(std::move(config)), w_(std::move(weights)), backend_(backend), report_(std::move(report)) {}

std::unique_ptr<Qwen3Model> Qwen3Model::load(const std::string& dir, Backend& backend) {
  Qwen3Config config = load_qwen3_config(dir);
  LoadReport report;
  Qwen3Weights weights = load_qwen3_weights(dir, config, backend, report);
  return std::unique_ptr<Qwen3Model>(new Qwen3Model(std::move(config), std::move(weights), backend, report));
}

KvCache Qwen3Model::new_cache(int64_t capacity) const {
  OMNI_CHECK(capacity > 0, "KV cache capacity must be positive, got ", capacity);
  KvCache c;
  c.capacity = capacity;
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    c.k.push_back(backend_.alloc({1, capacity, config_.num_key_value_heads, config_.head_dim}, DType::F32));
    c.v.push_back(backend_.alloc({1, capacity, config_.num_key_value_heads, config_.head_dim}, DType::F32));
  }
  return c;
}

// One decoder block, in place on the residual stream x [T, D]:
//   x += o_proj(attention(rope(k_norm(q_proj(norm(x)))), ...))
//   x += down_proj(silu(gate_proj(norm(x))) * up_proj(norm(x)))
void Qwen3Model::block_forward(const Qwen3Block& b, Tensor& x, const Tensor& positions, Tensor& k_cache,
                               Tensor& v_cache, int64_t start_pos) {
  const int64_t T = x.dim(0), D = config_.hidden_size, hd = config_.head_dim;
  const int64_t Hq = config_.num_attention_heads, Hkv = config_.num_key_value_heads;
  const auto eps = static_cast<float>(config_.rms_norm_eps);

  Tensor h = backend_.alloc({T, D}, DType::F32);
  backend_.rmsnorm_forward(h, x, b.input_layernorm, eps);

  Tensor q = backend_.alloc({T, Hq * hd}, DType::F32);
  Tensor k = backend_.alloc({T, Hkv * hd}, DType::F32);
  Tensor v = backend_.alloc({T, Hkv * hd}, DType::F32);
  backend_.linear_forward(q, h, *b.q_proj);
  backend_.linear_forward(k, h, *b.k_proj);
  backend_.linear_forward(v, h, *b.v_proj);

  // Per-head RMSNorm of q and k, then rotary embedding.
  Tensor q_heads = q.view({T * Hq, hd});
  Tensor k_heads = k.view({T * Hkv, hd});
  backend_.rmsnorm_forward(q_heads, q_heads, b.q_norm, eps);
  backend_.rmsnorm_forward(k_heads, k_heads, b.k_norm, eps);
  Tensor q3 = q.view({T, Hq, hd});
  Tensor k3 = k.view({T, Hkv, hd});
  const auto theta = static_cast<float>(config_.rope_theta);
  backend_.rope_forward(q3, positions, theta);
  backend_.rope_forward(k3, positions, theta);

  // Append this step's keys and values to the cache, then attend over everything cached so far.
  const int64_t cap = k_cache.dim(1);
  Tensor k_rows = k_cache.view({cap, Hkv * hd}).slice_rows(start_pos, start_pos + T);
  Tensor v_rows = v_cache.view({cap, Hkv * hd}).slice_rows(start_pos, start_pos + T);
  backend_.copy(k_rows, k);
  backend_.copy(v_rows, v);
  Tensor attn = backend_.alloc({1, T, Hq, hd}, DType::F32);
  backend_.attention_forward(attn, q.view({1, T, Hq, hd}), k_cache, v_cache, start_pos);

  Tensor o = backend_.alloc({T, D}, DType::F32);
  backend_.linear_forward(o, attn.view({T, Hq * hd}), *b.o_proj);
  backend_.add_forward(x, x, o);

  backend_.rmsnorm_forward(h, x, b.post_attention_layernorm, eps);
  const int64_t I = config_.intermediate_size;
  Tensor gate = backend_.alloc({T, I}, DType::F32);
  Tensor up = backend_.alloc({T, I}, DType::F32);
  backend_.linear_forward(gate, h, *b.gate_proj);
  backend_.linear_forward(up, h, *b.up_proj);
  backend_.silu_mul_forward(gate, gate, up);
  backend_.linear_forward(o, gate, *b.down_proj);
  backend_.add_forward(x, x, o);
}

Tensor Qwen3Model::forward(std::span<const int32_t> ids, KvCache& cache, bool all_logits,
                           std::vector<Tensor>* hidden_states) {
  const auto T = static_cast<int64_t>(ids.size());
  OMNI_CHECK(T > 0, "forward needs at least one token");
  OMNI_CHECK(cache.length + T <= cache.capacity, "KV cache full: ", cache.length, " + ", T, " tokens exceed capacity ",
             cache.capacity);
  for (int32_t id : ids)
    OMNI_CHECK(id >= 0 && id < config_.vocab_size, "token id ", id, " is outside the vocabulary (",
               config_.vocab_size, ")");
  const int64_t start = cache.length;

  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(start + t);
  Tensor positions = Tensor::from_i32(pos, {T});
  Tensor id_tensor = Tensor::from_i32(ids, {T});

  Tensor x = backend_.alloc({T, config_.hidden_size}, DType::F32);
  backend_.embedding_forward(x, id_tensor, w_.embed_tokens);
  if (hidden_states) {
    hidden_states->clear();
    hidden_states->push_back(backend_.to_cpu(x));
  }
  for (size_t l = 0; l < w_.blocks.size(); ++l) {
    block_forward(w_.blocks[l], x, positions, cache.k[l], cache.v[l], start);
    if (hidden_states) hidden_states->push_back(backend_.to_cpu(x));
  }
  cache.length += T;

  backend_.rmsnorm_forward(x, x, w_.final_norm, static_cast<float>(config_.rms_norm_eps));
  Tensor last = all_logits ? x : x.slice_rows(T - 1, T);
  Tensor logits = backend_.alloc({last.dim(0), config_.vocab_size}, DType::F32);
  backend_.linear_forward(logits, last, *w_.lm_head);
  return backend_.to_cpu(logits);
}

}  // namespace omni
