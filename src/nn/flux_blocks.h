// The two transformer blocks of FLUX (diffusers' FluxTransformerBlock and FluxSingleTransformerBlock), on the
// block interface of block.h, so that inference and AutoRound tuning run the same definition. Reads like the
// architecture (../shared/docs/reference/flux.md §1.8, §1.9), per sample b of B, with image tokens x [Ni, D],
// text tokens c [Nt, D], the conditioning vector temb [D] and rotary tables over the joint sequence [c; x]:
//
// Double-stream block (separate weights for the two streams, one joint attention):
//   shift, scale, gate (attention) and shift, scale, gate (MLP) = chunks of norm1.linear(silu(temb)), and
//   the same six from norm1_context.linear for the text
//   xn = LN(x)·(1+scale)+shift; q, k, v = to_q/k/v(xn); q, k = rmsnorm per head (norm_q, norm_k)
//   cn likewise; eq, ek, ev = add_q/k/v_proj(cn); norm_added_q/k
//   Q, K, V = [eq; q], [ek; k], [ev; v] (text first); Q, K = rope(Q, K); O = attention(Q, K, V), no mask
//   x += gate · to_out.0(O image rows); c += gate · to_add_out(O text rows)
//   x += gate · ff.net.2(gelu_tanh(ff.net.0.proj(LN(x)·(1+scale)+shift))); c likewise with ff_context
// Single-stream block (one set of weights over the joint sequence h = [c; x]):
//   shift, scale, gate = chunks of norm.linear(silu(temb)); hn = LN(h)·(1+scale)+shift
//   mlp = gelu_tanh(proj_mlp(hn)); a = attention(rope(rmsnorm(to_q(hn))), rope(rmsnorm(to_k(hn))), to_v(hn))
//   h += gate · proj_out([a, mlp])   (features concatenated, attention first)
//
// Block tensors: "img" [B, Ni, D] and "txt" [B, Nt, D] (read and replaced; or their rows [B·Ni, D], [B·Nt, D], as
// the tuning context passes them: B is temb's); conditioning "temb" [B, D] and "rope_cos", "rope_sin" F32 [B·L, hd]
// (L = Nt + Ni, rows in the joint order). The context's attention() is full (non-causal) attention within each
// sample's L joint rows (attention_mask()).
//
// Backward (tuning, F32): d_out holds ∂L/∂img and ∂L/∂txt and, under their names, the forward's conditioning
// tensors (temb for B, the rotary tables for RoPE's backward). The forward of a training context keeps what the
// backward reads under ctx.act names (the block inputs, LN outputs, pre-activations, the attention residual, rstd
// and lse); an inference forward computes the same numbers in place. temb is conditioning, so the adaLN Linears
// get ∂L/∂W only and no gradient passes through silu.
#pragma once

#include "nn/block.h"
#include "nn/flux_spec.h"

namespace omni {

class FluxDoubleBlock : public Block {
 public:
  explicit FluxDoubleBlock(const FluxSpec& spec);
  const std::vector<LinearDesc>& linears() const override { return linears_; }
  const std::vector<ParamDesc>& params() const override { return params_; }
  std::vector<std::string> io_names() const override { return {"img", "txt"}; }
  std::vector<std::string> conditioning_names() const override { return {"temb", "rope_cos", "rope_sin"}; }
  AttentionMask attention_mask() const override { return AttentionMask::Full; }
  void forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const override;
  void backward(BlockContext& ctx, const NamedTensors& d_out, NamedTensors* d_in) const override;

 private:
  FluxSpec spec_;
  std::vector<LinearDesc> linears_;
  std::vector<ParamDesc> params_;
};

class FluxSingleBlock : public Block {
 public:
  explicit FluxSingleBlock(const FluxSpec& spec);
  const std::vector<LinearDesc>& linears() const override { return linears_; }
  const std::vector<ParamDesc>& params() const override { return params_; }
  std::vector<std::string> io_names() const override { return {"img", "txt"}; }
  std::vector<std::string> conditioning_names() const override { return {"temb", "rope_cos", "rope_sin"}; }
  AttentionMask attention_mask() const override { return AttentionMask::Full; }
  void forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const override;
  void backward(BlockContext& ctx, const NamedTensors& d_out, NamedTensors* d_in) const override;

 private:
  FluxSpec spec_;
  std::vector<LinearDesc> linears_;
  std::vector<ParamDesc> params_;
};

}  // namespace omni
