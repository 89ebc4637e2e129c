#include "nn/decoder_block.h"

#include "core/error.h"

namespace omni {

DecoderBlock::DecoderBlock(const DecoderSpec& s) : spec_(s) {
  OMNI_CHECK(s.num_key_value_heads > 0 && s.num_attention_heads % s.num_key_value_heads == 0, s.architecture, ": ",
             s.num_attention_heads, " query heads are not a multiple of ", s.num_key_value_heads, " kv heads");
  const int64_t D = s.hidden_size, hd = s.head_dim, I = s.intermediate_size;
  const int64_t qo = s.num_attention_heads * hd, kvo = s.num_key_value_heads * hd;
  const DecoderNames& n = s.names;
  linears_ = {{n.q_proj, D, qo, s.qkv_bias},   {n.k_proj, D, kvo, s.qkv_bias}, {n.v_proj, D, kvo, s.qkv_bias},
              {n.o_proj, qo, D, s.o_bias},     {n.gate_proj, D, I, false},     {n.up_proj, D, I, false},
              {n.down_proj, I, D, false}};
  params_ = {{n.input_norm, {D}}, {n.post_attention_norm, {D}}};
  if (s.qk_norm) {
    params_.push_back({n.q_norm, {hd}});
    params_.push_back({n.k_norm, {hd}});
  }
}

void DecoderBlock::forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const {
  const DecoderSpec& s = spec_;
  const DecoderNames& n = s.names;
  Backend& be = ctx.backend();
  const Tensor& x = in.at("hidden");
  Tensor& y = out.at("hidden");
  const int64_t N = x.dim(0), D = s.hidden_size, hd = s.head_dim, I = s.intermediate_size;
  const int64_t Hq = s.num_attention_heads, Hkv = s.num_key_value_heads;
  const auto eps = static_cast<float>(s.rms_norm_eps);
  const bool train = ctx.training();
  auto rstd = [&](std::string_view name, int64_t rows) {
    Tensor t;
    if (train) t = ctx.stat(name, {rows});
    return t;
  };
  auto stats = [&](Tensor& t) { return t.defined() ? &t : nullptr; };

  Tensor h1 = ctx.act("h1", {N, D});
  Tensor rstd1 = rstd("rstd1", N);
  be.rms_norm(h1, x, ctx.param(n.input_norm), eps, stats(rstd1));

  Tensor q_pre = ctx.act("q_pre", {N, Hq, hd}), k_pre = ctx.act("k_pre", {N, Hkv, hd});
  Tensor v = ctx.act("v", {N, Hkv, hd});
  Tensor q_rows = q_pre.view({N, Hq * hd}), k_rows = k_pre.view({N, Hkv * hd}), v_rows = v.view({N, Hkv * hd});
  ctx.linear(n.q_proj, q_rows, h1);
  ctx.linear(n.k_proj, k_rows, h1);
  ctx.linear(n.v_proj, v_rows, h1);

  const RopeParams rope{static_cast<float>(s.rope_theta)};
  Tensor att = ctx.act("att", {N, Hq, hd});
  const BlockContext::KvRows* kv = train ? nullptr : ctx.kv_rows();
  if (kv && s.qk_norm) {
    // Inference: norm + RoPE in one pass each; the keys go straight into the cache, the values are copied there.
    Tensor q = ctx.act("q", {N, Hq, hd});
    Tensor k_dst = kv->k, v_dst = kv->v.view({kv->v.dim(0), Hkv * hd});
    be.rms_norm_rope(q, q_pre, ctx.param(n.q_norm), eps, ctx.positions(), rope);
    be.rms_norm_rope(k_dst, k_pre, ctx.param(n.k_norm), eps, ctx.positions(), rope, &kv->index);
    be.copy_rows(v_dst, v_rows, kv->index);
    ctx.attention_cached(att, q);
  } else {
    attention_train_layout(ctx, q_pre, k_pre, v, att, rope, eps);
  }

  Tensor x2 = ctx.act("x2", {N, D});
  ctx.linear(n.o_proj, x2, att.view({N, Hq * hd}));
  Tensor h2 = ctx.act("h2", {N, D});
  if (train) {
    be.add(x2, x2, x);
    Tensor rstd2 = rstd("rstd2", N);
    be.rms_norm(h2, x2, ctx.param(n.post_attention_norm), eps, stats(rstd2));
  } else {
    be.add_rms_norm(x2, h2, x2, x, ctx.param(n.post_attention_norm), eps);
  }
  Tensor gate = ctx.act("gate", {N, I}), up = ctx.act("up", {N, I}), act = ctx.act("act", {N, I});
  ctx.linear(n.gate_proj, gate, h2);
  ctx.linear(n.up_proj, up, h2);
  be.silu_mul(act, gate, up);

  ctx.linear(n.down_proj, y, act);
  be.add(y, y, x2);
  // The input itself is read by the backward (the first norm's input): training contexts keep it.
  if (train) {
    Tensor saved_x = ctx.act("x", {N, D});
    be.copy(saved_x, x);
  }
}

// q/k norm (Qwen3) and RoPE as separate ops whose outputs the backward reads, then the context's attention.
void DecoderBlock::attention_train_layout(BlockContext& ctx, const Tensor& q_pre, const Tensor& k_pre,
                                          const Tensor& v, Tensor& att, const RopeParams& rope, float eps) const {
  const DecoderSpec& s = spec_;
  const DecoderNames& n = s.names;
  Backend& be = ctx.backend();
  const int64_t N = q_pre.dim(0), hd = s.head_dim, Hq = s.num_attention_heads, Hkv = s.num_key_value_heads;
  const bool train = ctx.training();
  auto rstd = [&](std::string_view name, int64_t rows) {
    Tensor t;
    if (train) t = ctx.stat(name, {rows});
    return t;
  };
  auto stats = [&](Tensor& t) { return t.defined() ? &t : nullptr; };
  // Per-head RMSNorm of q and k (Qwen3), then rotary embedding. Without the norm, RoPE rotates q_pre in place
  // (its backward needs nothing saved).
  Tensor q = q_pre, k = k_pre;
  if (s.qk_norm) {
    q = ctx.act("q", {N, Hq, hd});
    k = ctx.act("k", {N, Hkv, hd});
    Tensor rq = rstd("rstd_q", N * Hq), rk = rstd("rstd_k", N * Hkv);
    be.rms_norm(q, q_pre, ctx.param(n.q_norm), eps, stats(rq));
    be.rms_norm(k, k_pre, ctx.param(n.k_norm), eps, stats(rk));
  }
  be.rope(q, ctx.positions(), rope);
  be.rope(k, ctx.positions(), rope);

  Tensor lse;
  if (train) lse = ctx.stat("lse", {N, Hq});
  ctx.attention(att, q, k, v, stats(lse));
}

// The forward in reverse, reading the activations the forward saved under the same names.
void DecoderBlock::backward(BlockContext& ctx, const NamedTensors& d_out, NamedTensors* d_in) const {
  OMNI_CHECK(ctx.training(), "DecoderBlock::backward needs a tuning context");
  const DecoderSpec& s = spec_;
  const DecoderNames& n = s.names;
  Backend& be = ctx.backend();
  const Tensor& dy = d_out.at("hidden");
  const int64_t N = dy.dim(0), D = s.hidden_size, hd = s.head_dim, I = s.intermediate_size;
  const int64_t Hq = s.num_attention_heads, Hkv = s.num_key_value_heads;
  const Tensor x = ctx.act("x", {N, D}), h1 = ctx.act("h1", {N, D}), x2 = ctx.act("x2", {N, D});
  const Tensor h2 = ctx.act("h2", {N, D});
  const Tensor gate = ctx.act("gate", {N, I}), up = ctx.act("up", {N, I}), act = ctx.act("act", {N, I});
  const Tensor q_pre = ctx.act("q_pre", {N, Hq, hd}), k_pre = ctx.act("k_pre", {N, Hkv, hd});
  const Tensor v = ctx.act("v", {N, Hkv, hd}), att = ctx.act("att", {N, Hq, hd});
  const Tensor q = s.qk_norm ? ctx.act("q", {N, Hq, hd}) : q_pre;
  const Tensor k = s.qk_norm ? ctx.act("k", {N, Hkv, hd}) : k_pre;
  const Tensor lse = ctx.stat("lse", {N, Hq});

  Tensor d_act = ctx.act("d_act", {N, I}), d_up = ctx.act("d_up", {N, I});
  Tensor d_h = ctx.act("d_h", {N, D}), d_x2 = ctx.act("d_x2", {N, D});
  Tensor d_att = ctx.act("d_att", {N, Hq, hd}), d_q = ctx.act("d_q", {N, Hq, hd});
  Tensor d_k = ctx.act("d_k", {N, Hkv, hd}), d_v = ctx.act("d_v", {N, Hkv, hd});

  // MLP: y = x2 + down(silu(gate) · up)
  ctx.linear_backward(n.down_proj, &d_act, dy, act, false);
  be.silu_mul_backward(d_act, d_up, d_act, gate, up);  // d_act now holds ∂L/∂gate
  ctx.linear_backward(n.gate_proj, &d_h, d_act, h2, false);
  ctx.linear_backward(n.up_proj, &d_h, d_up, h2, true);
  be.copy(d_x2, dy);  // the residual path
  be.rms_norm_backward(d_x2, nullptr, d_h, x2, ctx.param(n.post_attention_norm), ctx.stat("rstd2", {N}), true);

  // Attention: x2 = x + o(att)
  Tensor d_att_rows = d_att.view({N, Hq * hd});
  ctx.linear_backward(n.o_proj, &d_att_rows, d_x2, att.view({N, Hq * hd}), false);
  ctx.attention_backward(d_q, d_k, d_v, d_att, q, k, v, att, lse);
  const RopeParams rope{static_cast<float>(s.rope_theta)};
  be.rope_backward(d_q, ctx.positions(), rope);
  be.rope_backward(d_k, ctx.positions(), rope);
  if (s.qk_norm) {
    be.rms_norm_backward(d_q, nullptr, d_q, q_pre, ctx.param(n.q_norm), ctx.stat("rstd_q", {N * Hq}), false);
    be.rms_norm_backward(d_k, nullptr, d_k, k_pre, ctx.param(n.k_norm), ctx.stat("rstd_k", {N * Hkv}), false);
  }
  ctx.linear_backward(n.q_proj, &d_h, d_q.view({N, Hq * hd}), h1, false);
  ctx.linear_backward(n.k_proj, &d_h, d_k.view({N, Hkv * hd}), h1, true);
  ctx.linear_backward(n.v_proj, &d_h, d_v.view({N, Hkv * hd}), h1, true);
  if (d_in) {
    Tensor& dx = d_in->at("hidden");
    be.copy(dx, d_x2);
    be.rms_norm_backward(dx, nullptr, d_h, x, ctx.param(n.input_norm), ctx.stat("rstd1", {N}), true);
  }
}

}  // namespace omni
