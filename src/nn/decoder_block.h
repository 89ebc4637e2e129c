// The Llama-family decoder block (Qwen3, Qwen2, Llama): pre-norm grouped-query attention with RoPE (optional
// per-head q/k RMSNorm, optional q/k/v and o biases) and a SiLU-gated MLP, written once for inference and
// tuning (block.h). Reads like the architecture:
//   h1 = rmsnorm(x, input_layernorm)
//   q, k, v = q_proj(h1), k_proj(h1), v_proj(h1)           (+ bias)
//   q, k = rope(q_norm(q)), rope(k_norm(k))                 (q/k norm per head, when the spec has it)
//   x2 = x + o_proj(attention(q, k, v))
//   h2 = rmsnorm(x2, post_attention_layernorm)
//   y = x2 + down_proj(silu(gate_proj(h2)) · up_proj(h2))
// Inference (a context with kv_rows()) runs the same function through fused ops: q/k norm + RoPE in one op each
// (the keys written straight into the KV cache), and the residual add with the norm after it.
#pragma once

#include "nn/block.h"
#include "nn/decoder_spec.h"

namespace omni {

class DecoderBlock : public Block {
 public:
  explicit DecoderBlock(const DecoderSpec& spec);
  const std::vector<LinearDesc>& linears() const override { return linears_; }
  const std::vector<ParamDesc>& params() const override { return params_; }
  std::vector<std::string> io_names() const override { return {"hidden"}; }
  // in/out "hidden": [N, D] token rows.
  void forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const override;
  void backward(BlockContext& ctx, const NamedTensors& d_out, NamedTensors* d_in) const override;

 private:
  // q/k norm and RoPE as separate ops, outputs kept for the backward, then ctx.attention (tuning, and inference
  // where the fused path does not apply).
  void attention_train_layout(BlockContext& ctx, const Tensor& q_pre, const Tensor& k_pre, const Tensor& v,
                              Tensor& att, const RopeParams& rope, float eps) const;

  DecoderSpec spec_;
  std::vector<LinearDesc> linears_;
  std::vector<ParamDesc> params_;
};

}  // namespace omni
