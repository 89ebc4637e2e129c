// CLIP's text tower (transformers' CLIPTextModel; FLUX's text_encoder/, openai/clip-vit-large-patch14) for
// inference (../shared/docs/reference/flux.md §3.2). Per sample of L ≤ max_position_embeddings token ids:
//
//   h = token_embedding[ids] + position_embedding[0..L−1]
//   each layer (pre-LN, one ClipEncoderLayer):
//     h += out_proj(attention(q_proj(LN1(h)), k_proj(·), v_proj(·)))   causal, scores · 1/√hd, biases on all four
//     h += fc2(quick_gelu(fc1(LN2(h))))                                 quick_gelu(x) = x · sigmoid(1.702 x)
//   last_hidden_state = final_layer_norm(h)
//   pooler_output = last_hidden_state at the first EOS: with the legacy config id eos_token_id == 2 the position
//   of the largest id (the EOS 49407 is the largest id of the vocabulary), else the first position holding
//   eos_token_id.
// Tensor names are the checkpoint's: "text_model.embeddings.token_embedding.weight", ...,
// "text_model.encoder.layers.{i}.self_attn.q_proj", "text_model.final_layer_norm.weight"; transformers 5 saves
// them without the "text_model." prefix, and both layouts load. The int64 "embeddings.position_ids" buffer older
// checkpoints carry is ignored.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "nn/block.h"
#include "nn/causal_lm.h"
#include "nn/encoder_context.h"

namespace omni {

struct ClipTextSpec {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_heads = 12;                 // num_attention_heads
  int64_t num_layers = 12;                // num_hidden_layers
  int64_t max_position_embeddings = 77;
  float layer_norm_eps = 1e-5f;
  int64_t eos_token_id = 2;               // FLUX's config keeps the legacy 2: pooling by the largest id

  int64_t head_dim() const { return hidden_size / num_heads; }
  bool legacy_pooling() const { return eos_token_id == 2; }
};

// One encoder layer on the block interface: "hidden" [B, L, D] read and replaced; attention through the
// context (causal within each sample). Names relative to "text_model.encoder.layers.{i}.".
class ClipEncoderLayer : public Block {
 public:
  explicit ClipEncoderLayer(const ClipTextSpec& spec);
  const std::vector<LinearDesc>& linears() const override { return linears_; }
  const std::vector<ParamDesc>& params() const override { return params_; }
  std::vector<std::string> io_names() const override { return {"hidden"}; }
  void forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const override;
  // Not written: the text encoders run forward only (they are not tuned). Throws saying so.
  void backward(BlockContext& ctx, const NamedTensors& d_out, NamedTensors* d_in) const override;

 private:
  ClipTextSpec spec_;
  std::vector<LinearDesc> linears_;
  std::vector<ParamDesc> params_;
};

struct ClipTextOutput {
  Tensor last_hidden_state;  // [B, L, hidden] CPU F32
  Tensor pooler_output;      // [B, hidden] CPU F32
};

class ClipTextEncoder {
 public:
  // dir: model.safetensors (or shards) of a CLIPTextModel; spec: its config.json (models/text_encoders,
  // open_clip_text_encoder).
  static std::unique_ptr<ClipTextEncoder> open(const std::string& dir, const ClipTextSpec& spec, Backend& backend);
  ~ClipTextEncoder();

  const ClipTextSpec& spec() const;
  const LoadReport& load_report() const;
  // input_ids: host I32 or I64 [B, L], 1 ≤ L ≤ max_position_embeddings, ids in [0, vocab_size).
  ClipTextOutput forward(const Tensor& input_ids, TextEncoderTrace* trace = nullptr);

  // The row of each sample that pooler_output takes (the rule of the header comment). A sample without
  // eos_token_id (first-match rule) is an error naming it.
  static std::vector<int64_t> pooled_positions(const ClipTextSpec& spec, const Tensor& input_ids);

 private:
  struct Impl;
  explicit ClipTextEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace omni
