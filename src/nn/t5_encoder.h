// T5's encoder (transformers' T5EncoderModel; FLUX's text_encoder_2/, google/t5-v1_1-xxl) for inference
// (../shared/docs/reference/flux.md §3.1). Per sample of L token ids, no attention mask (FLUX passes none):
//
//   h = shared[ids]                                   no embedding scale
//   bias[h, i, j] = relative_attention_bias[bucket(j − i), h]   block 0's table, computed once, used by every block
//   each block (one T5EncoderBlock):
//     h += o(attention_with_bias(q(RMS(h)), k(·), v(·), bias, scale 1))   no 1/√d_kv: T5 does not scale scores
//     h += wo(gelu_tanh(wi_0(RMS(h))) · wi_1(RMS(h)))                     gated GELU ("gated-gelu", gelu_new)
//   last_hidden_state = final_layer_norm(h)
// RMS is T5LayerNorm, x · rsqrt(mean(x²) + eps) · w, without mean or bias (the rms_norm op). No Linear has a bias.
// Tensor names are the checkpoint's: "shared.weight" (or its tied alias "encoder.embed_tokens.weight"),
// "encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}", "encoder.block.0.layer.0.SelfAttention.
// relative_attention_bias.weight" [num_buckets, H], "encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}",
// "encoder.block.{i}.layer.{0,1}.layer_norm.weight", "encoder.final_layer_norm.weight".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "nn/block.h"
#include "nn/causal_lm.h"
#include "nn/encoder_context.h"

namespace omni {

struct T5EncoderSpec {
  int64_t vocab_size = 32128;
  int64_t d_model = 4096;
  int64_t d_kv = 64;
  int64_t num_heads = 64;
  int64_t d_ff = 10240;
  int64_t num_layers = 24;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  float layer_norm_epsilon = 1e-6f;

  int64_t inner_dim() const { return num_heads * d_kv; }  // may differ from d_model (t5-v1_1-small: 384 vs 512)
};

// The bucket of relative position rel = key − query for bidirectional attention, as T5 computes it (in f32 for
// the logarithmic part): half the buckets for rel > 0; |rel| below a quarter of the buckets is its own bucket,
// larger distances share logarithmically wider buckets up to max_distance, beyond which all share the last.
int64_t t5_relative_position_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance);
// bias F32 [H, L, L] from the table F32/BF16/F16 [num_buckets, H] (block 0's relative_attention_bias), on the host.
Tensor t5_position_bias(const T5EncoderSpec& spec, const Tensor& table, int64_t L);

// One encoder block on the block interface: "hidden" [B, L, d_model] read and replaced; conditioning
// "position_bias" F32 [H, L, L] (the same for every block). Names relative to "encoder.block.{i}.".
class T5EncoderBlock : public Block {
 public:
  explicit T5EncoderBlock(const T5EncoderSpec& spec);
  const std::vector<LinearDesc>& linears() const override { return linears_; }
  const std::vector<ParamDesc>& params() const override { return params_; }
  std::vector<std::string> io_names() const override { return {"hidden"}; }
  std::vector<std::string> conditioning_names() const override { return {"position_bias"}; }
  void forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const override;
  // Not written: the text encoders run forward only. Throws saying so.
  void backward(BlockContext& ctx, const NamedTensors& d_out, NamedTensors* d_in) const override;

 private:
  T5EncoderSpec spec_;
  std::vector<LinearDesc> linears_;
  std::vector<ParamDesc> params_;
};

class T5Encoder {
 public:
  // dir: model.safetensors or model.safetensors.index.json + shards of a T5EncoderModel; spec: its config.json
  // (models/text_encoders, open_t5_encoder).
  static std::unique_ptr<T5Encoder> open(const std::string& dir, const T5EncoderSpec& spec, Backend& backend);
  ~T5Encoder();

  const T5EncoderSpec& spec() const;
  const LoadReport& load_report() const;
  // The relative position bias [H, L, L] this model adds to the scores of a sequence of L tokens (CPU F32).
  Tensor position_bias(int64_t L) const;
  // input_ids: host I32 or I64 [B, L], ids in [0, vocab_size). Returns last_hidden_state [B, L, d_model] (CPU F32).
  Tensor forward(const Tensor& input_ids, TextEncoderTrace* trace = nullptr);

 private:
  struct Impl;
  explicit T5Encoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace omni
