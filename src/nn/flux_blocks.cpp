#include "nn/flux_blocks.h"

#include <string>
#include <vector>

namespace omni {
namespace {

std::vector<LinearDesc> with_bias(std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> l) {
  std::vector<LinearDesc> out;
  for (auto& [name, io] : l) out.push_back({name, io.first, io.second, true});
  return out;
}

Tensor i32(Backend& be, const std::vector<int32_t>& v) {
  return be.upload(Tensor::from_i32(v, {static_cast<int64_t>(v.size())}));
}

// Where the rows of each stream sit in the joint sequence: sample b's text rows first, then its image rows.
struct JointRows {
  int64_t B = 0, Nt = 0, Ni = 0, L = 0;
  Tensor txt, img;  // I32 [B·Nt], [B·Ni] on the backend: the joint row of each stream row
};

JointRows joint_rows(Backend& be, int64_t B, int64_t Nt, int64_t Ni) {
  JointRows j{B, Nt, Ni, Nt + Ni, {}, {}};
  std::vector<int32_t> t, i;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t r = 0; r < Nt; ++r) t.push_back(static_cast<int32_t>(b * j.L + r));
    for (int64_t r = 0; r < Ni; ++r) i.push_back(static_cast<int32_t>(b * j.L + Nt + r));
  }
  if (!t.empty()) j.txt = i32(be, t);
  j.img = i32(be, i);
  return j;
}

// The whole joint sequence as one "stream" in joint order (the single block).
JointRows all_rows(Backend& be, int64_t B, int64_t L) { return joint_rows(be, B, 0, L); }

// The rows of the modulation chunk `index` of `count` in m [B, count·D] seen as [B·count, D].
Tensor chunk_rows(Backend& be, int64_t B, int64_t index, int64_t count) {
  std::vector<int32_t> ids;
  for (int64_t b = 0; b < B; ++b) ids.push_back(static_cast<int32_t>(b * count + index));
  return i32(be, ids);
}

// Chunk `index` of `count` equal chunks of each row of m [B, count·D], gathered into [B, D].
Tensor chunk(BlockContext& ctx, const Tensor& m, int64_t index, int64_t count, const std::string& name) {
  Backend& be = ctx.backend();
  const int64_t B = m.dim(0), D = m.dim(1) / count;
  Tensor out = ctx.act(name, {B, D});
  be.embedding(out, chunk_rows(be, B, index, count), m.view({B * count, D}));
  return out;
}

// The modulation vectors of one norm: linear(silu(temb)) split into `count` chunks of D.
std::vector<Tensor> modulation(BlockContext& ctx, const std::string& linear, const Tensor& temb_silu, int64_t count,
                               const std::string& prefix) {
  const int64_t B = temb_silu.dim(0), D = temb_silu.dim(1);
  Tensor m = ctx.act(prefix + ".mod", {B, count * D});
  ctx.linear(linear, m, temb_silu);
  std::vector<Tensor> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(chunk(ctx, m, i, count, prefix + ".mod" + std::to_string(i)));
  return out;
}

// The saved chunks of a training forward's modulation (same names and shapes).
std::vector<Tensor> saved_modulation(BlockContext& ctx, int64_t B, int64_t D, int64_t count,
                                     const std::string& prefix) {
  std::vector<Tensor> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(ctx.act(prefix + ".mod" + std::to_string(i), {B, D}));
  return out;
}

// The backward of modulation(): the chunk gradients d[i] [B, D] scattered into ∂L/∂m [B, count·D], then the Linear's
// backward (∂L/∂W; temb is conditioning, so no ∂L/∂temb and no silu backward).
void modulation_backward(BlockContext& ctx, const std::string& linear, const std::vector<Tensor>& d,
                         const Tensor& temb_silu, const std::string& prefix) {
  Backend& be = ctx.backend();
  const auto count = static_cast<int64_t>(d.size());
  const int64_t B = temb_silu.dim(0), D = temb_silu.dim(1);
  Tensor dm = ctx.act(prefix + ".d_mod", {B, count * D});
  Tensor rows = dm.view({B * count, D});
  for (int64_t i = 0; i < count; ++i) be.copy_rows(rows, d[static_cast<size_t>(i)], chunk_rows(be, B, i, count));
  ctx.linear_backward(linear, nullptr, dm, temb_silu, false);
}

// LN(x)·(1 + scale) + shift, x [B, T, D]. Training keeps LN(x) ("<name>.ln") for the backward; the numbers are the
// same either way.
Tensor norm_modulate(BlockContext& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale, const std::string& name) {
  Backend& be = ctx.backend();
  Tensor y = ctx.act(name, x.shape());
  Tensor ln = ctx.training() ? ctx.act(name + ".ln", x.shape()) : y;
  be.layer_norm(ln, x, FluxSpec::kNormEps);
  be.modulate(y, ln, scale, shift);
  return y;
}

// The backward of norm_modulate() from dy [B, T, D] (overwritten): the chunk gradients dshift, dscale, and
// dx += ∂L/∂x when dx is given.
void norm_modulate_backward(BlockContext& ctx, Tensor& dy, Tensor* dx, const Tensor& x, const Tensor& scale,
                            Tensor& dshift, Tensor& dscale, const std::string& name) {
  Backend& be = ctx.backend();
  const Tensor ln = ctx.act(name + ".ln", x.shape());
  be.modulate_backward(dy, dscale, dshift, dy, ln, scale);
  if (dx) be.layer_norm_backward(*dx, dy, x, FluxSpec::kNormEps, /*accumulate_dx=*/true);
}

// q or k of one stream: linear, then RMSNorm over each head. Returns [rows, H, hd]. Training keeps the Linear's
// output ("<name>") and the norm's rstd ("<name>.rstd") and normalises into "<name>.normed".
Tensor head_projection(BlockContext& ctx, const std::string& linear, const std::string& norm, const Tensor& x,
                       int64_t H, int64_t hd, const std::string& name) {
  const int64_t rows = x.numel() / x.dim(-1);
  Tensor flat = ctx.act(name, {rows, H * hd});
  ctx.linear(linear, flat, x);
  Tensor y = flat.view({rows, H, hd});
  if (norm.empty()) return y;
  if (!ctx.training()) {
    ctx.backend().rms_norm(y, y, ctx.param(norm), FluxSpec::kNormEps);
    return y;
  }
  Tensor normed = ctx.act(name + ".normed", {rows, H, hd});
  Tensor rstd = ctx.stat(name + ".rstd", {rows * H});
  ctx.backend().rms_norm(normed, y, ctx.param(norm), FluxSpec::kNormEps, &rstd);
  return normed;
}

// The backward of head_projection(): dy [rows, H, hd] (overwritten) through the head norm, then the Linear, whose
// input gradient goes to (or, with accumulate, is added to) dx.
void head_projection_backward(BlockContext& ctx, const std::string& linear, const std::string& norm, Tensor& dy,
                              Tensor& dx, const Tensor& x, bool accumulate, const std::string& name) {
  const int64_t rows = dy.dim(0), H = dy.dim(1), hd = dy.dim(2);
  if (!norm.empty()) {
    const Tensor pre = ctx.act(name, {rows, H * hd}).view({rows, H, hd});
    const Tensor rstd = ctx.stat(name + ".rstd", {rows * H});
    ctx.backend().rms_norm_backward(dy, nullptr, dy, pre, ctx.param(norm), rstd, false);
  }
  ctx.linear_backward(linear, &dx, dy.view({rows, H * hd}), x, accumulate);
}

// MLP of a stream: net.2(gelu_tanh(net.0.proj(x))). Training keeps the pre-activation ("<name>.hidden") apart
// from the activation ("<name>.act").
Tensor feed_forward(BlockContext& ctx, const std::string& prefix, const Tensor& x, int64_t F, const std::string& name) {
  Backend& be = ctx.backend();
  const int64_t B = x.dim(0), T = x.dim(1), D = x.dim(2);
  Tensor h = ctx.act(name + ".hidden", {B, T, F});
  ctx.linear(prefix + ".net.0.proj", h, x);
  Tensor a = ctx.training() ? ctx.act(name + ".act", {B, T, F}) : h;
  be.gelu_tanh(a, h);
  Tensor y = ctx.act(name + ".out", {B, T, D});
  ctx.linear(prefix + ".net.2", y, a);
  return y;
}

// ∂L/∂x of feed_forward() (written to dx, x's shape) from dy [B, T, D].
void feed_forward_backward(BlockContext& ctx, const std::string& prefix, const Tensor& dy, Tensor& dx, const Tensor& x,
                           int64_t F, const std::string& name) {
  const int64_t B = x.dim(0), T = x.dim(1);
  const Tensor h = ctx.act(name + ".hidden", {B, T, F}), a = ctx.act(name + ".act", {B, T, F});
  Tensor da = ctx.act(name + ".d_act", {B, T, F});
  ctx.linear_backward(prefix + ".net.2", &da, dy, a, false);
  ctx.backend().gelu_tanh_backward(da, da, h);
  ctx.linear_backward(prefix + ".net.0.proj", &dx, da, x, false);
}

// Q, K, V of the joint sequence from the two streams' rows, RoPE on Q and K, and full attention per sample.
// Returns the attention output [B·L, H, hd] in joint order. Training saves lse ("joint.lse").
Tensor joint_attention(BlockContext& ctx, const JointRows& j, const Tensor* txt_qkv[3], const Tensor* img_qkv[3],
                       const Tensor& rope_cos, const Tensor& rope_sin, int64_t H, int64_t hd) {
  Backend& be = ctx.backend();
  const char* names[3] = {"joint.q", "joint.k", "joint.v"};
  Tensor qkv[3];
  for (int i = 0; i < 3; ++i) {
    qkv[i] = ctx.act(names[i], {j.B * j.L, H, hd});
    Tensor rows = qkv[i].view({j.B * j.L, H * hd});  // copy_rows moves rows of the last dim: whole tokens
    if (txt_qkv) be.copy_rows(rows, txt_qkv[i]->view({j.B * j.Nt, H * hd}), j.txt);
    if (img_qkv) be.copy_rows(rows, img_qkv[i]->view({j.B * j.Ni, H * hd}), j.img);
  }
  be.rope_interleaved(qkv[0], rope_cos, rope_sin);
  be.rope_interleaved(qkv[1], rope_cos, rope_sin);
  Tensor out = ctx.act("joint.attn", {j.B * j.L, H, hd});
  Tensor lse;
  if (ctx.training()) lse = ctx.stat("joint.lse", {j.B * j.L, H});
  ctx.attention(out, qkv[0], qkv[1], qkv[2], lse.defined() ? &lse : nullptr);
  return out;
}

// The backward of joint_attention() from dout [B·L, H, hd]: ∂L/∂Q, ∂L/∂K, ∂L/∂V of the joint sequence before RoPE
// ("joint.d_q", "joint.d_k", "joint.d_v"), in joint order.
void joint_attention_backward(BlockContext& ctx, const JointRows& j, const Tensor& dout, const Tensor& rope_cos,
                              const Tensor& rope_sin, int64_t H, int64_t hd, Tensor d[3]) {
  const Shape s{j.B * j.L, H, hd};
  const Tensor q = ctx.act("joint.q", s), k = ctx.act("joint.k", s), v = ctx.act("joint.v", s);
  const Tensor out = ctx.act("joint.attn", s), lse = ctx.stat("joint.lse", {j.B * j.L, H});
  d[0] = ctx.act("joint.d_q", s);
  d[1] = ctx.act("joint.d_k", s);
  d[2] = ctx.act("joint.d_v", s);
  ctx.attention_backward(d[0], d[1], d[2], dout, q, k, v, out, lse);
  ctx.backend().rope_interleaved_backward(d[0], rope_cos, rope_sin);
  ctx.backend().rope_interleaved_backward(d[1], rope_cos, rope_sin);
}

// Rows `rows` (I32, joint row of each stream row) of joint [B·L, D], as [B, n, D].
Tensor gather_rows(BlockContext& ctx, const Tensor& joint, const Tensor& rows, int64_t B, int64_t n,
                   const std::string& name) {
  const int64_t D = joint.numel() / joint.dim(0);
  Tensor out = ctx.act(name, {B, n, D});
  ctx.backend().embedding(out, rows, joint.view({joint.dim(0), D}));
  return out;
}

// The sizes of a call: "img", "txt" as [B, N, D] or as their rows [B·N, D] (the tuning context passes rows), B from
// "temb" [B, D].
struct Dims {
  int64_t B, Ni, Nt, D;
};

Dims stream_dims(const Tensor& img, const Tensor& txt, const Tensor& temb, const FluxSpec& s, const char* block) {
  const int64_t D = s.inner_dim();
  OMNI_CHECK(temb.ndim() == 2 && temb.dim(1) == D, block, ": temb expected [B, ", D, "], found ",
             shape_str(temb.shape()));
  const int64_t B = temb.dim(0);
  auto tokens = [&](const Tensor& t, const char* name) {
    const bool ok = t.dim(-1) == D && ((t.ndim() == 3 && t.dim(0) == B) || (t.ndim() == 2 && t.dim(0) % B == 0));
    OMNI_CHECK(ok, block, ": ", name, " expected [", B, ", N, ", D, "] (or its rows [", B, "·N, ", D, "]), found ",
               shape_str(t.shape()));
    return t.numel() / (B * D);
  };
  return {B, tokens(img, "img"), tokens(txt, "txt"), D};
}

Dims check_inputs(const NamedTensors& in, const FluxSpec& s, const char* block) {
  const Dims d = stream_dims(in.at("img"), in.at("txt"), in.at("temb"), s, block);
  const Shape rope{d.B * (d.Ni + d.Nt), s.head_dim};
  OMNI_CHECK(in.at("rope_cos").shape() == rope && in.at("rope_sin").shape() == rope, block,
             ": rope tables expected ", shape_str(rope), ", found ", shape_str(in.at("rope_cos").shape()));
  return d;
}

// t seen as [B, n, D].
Tensor as_stream(const Tensor& t, int64_t B, int64_t D) { return t.view({B, t.numel() / (B * D), D}); }

// The gradient of one stream's residual through "x + gate · h": dgate, and dh = dy · gate into `dh_name`.
Tensor gated_backward(BlockContext& ctx, const Tensor& dy, const Tensor& gate, const Tensor& h, Tensor& dgate,
                      const std::string& dh_name) {
  Tensor dh = ctx.act(dh_name, h.shape());
  ctx.backend().gated_add_backward(dgate, dh, dy, gate, h);
  return dh;
}

}  // namespace

FluxDoubleBlock::FluxDoubleBlock(const FluxSpec& spec) : spec_(spec) {
  const int64_t D = spec.inner_dim(), F = spec.mlp_dim();
  linears_ = with_bias({{"norm1.linear", {D, 6 * D}},
                        {"norm1_context.linear", {D, 6 * D}},
                        {"attn.to_q", {D, D}},
                        {"attn.to_k", {D, D}},
                        {"attn.to_v", {D, D}},
                        {"attn.add_q_proj", {D, D}},
                        {"attn.add_k_proj", {D, D}},
                        {"attn.add_v_proj", {D, D}},
                        {"attn.to_out.0", {D, D}},
                        {"attn.to_add_out", {D, D}},
                        {"ff.net.0.proj", {D, F}},
                        {"ff.net.2", {F, D}},
                        {"ff_context.net.0.proj", {D, F}},
                        {"ff_context.net.2", {F, D}}});
  for (const char* n : {"attn.norm_q.weight", "attn.norm_k.weight", "attn.norm_added_q.weight",
                        "attn.norm_added_k.weight"})
    params_.push_back({n, {spec.head_dim}});
}

namespace {

// Names of one stream of the double block.
struct Stream {
  const char* p;                      // "img" or "txt": the activation prefix
  const char* mod;                    // its adaLN Linear
  const char* q, *k, *v, *nq, *nk;    // projections and head norms
  const char* out;                    // attention output projection
  const char* ff;                     // MLP prefix
};
const Stream kImg{"img", "norm1.linear", "attn.to_q", "attn.to_k", "attn.to_v", "attn.norm_q.weight",
                  "attn.norm_k.weight", "attn.to_out.0", "ff"};
const Stream kTxt{"txt", "norm1_context.linear", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj",
                  "attn.norm_added_q.weight", "attn.norm_added_k.weight", "attn.to_add_out", "ff_context"};

std::string sname(const Stream& s, const char* what) { return std::string(s.p) + what; }

}  // namespace

void FluxDoubleBlock::forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const {
  const Dims d = check_inputs(in, spec_, "FLUX double block");
  Backend& be = ctx.backend();
  const bool train = ctx.training();
  const int64_t B = d.B, Ni = d.Ni, Nt = d.Nt, D = d.D, H = spec_.num_heads, hd = spec_.head_dim, F = spec_.mlp_dim();
  const Tensor x = as_stream(in.at("img"), B, D), c = as_stream(in.at("txt"), B, D);
  const JointRows j = joint_rows(be, B, Nt, Ni);
  if (train) {  // the norms' backward reads the block's inputs
    Tensor xs = ctx.act("img.in", x.shape()), cs = ctx.act("txt.in", c.shape());
    be.copy(xs, x);
    be.copy(cs, c);
  }

  Tensor temb_silu = ctx.act("temb.silu", in.at("temb").shape());
  be.silu(temb_silu, in.at("temb"));
  // shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
  const std::vector<Tensor> mx = modulation(ctx, kImg.mod, temb_silu, 6, "img");
  const std::vector<Tensor> mc = modulation(ctx, kTxt.mod, temb_silu, 6, "txt");

  const Tensor xn = norm_modulate(ctx, x, mx[0], mx[1], "img.norm1");
  const Tensor cn = norm_modulate(ctx, c, mc[0], mc[1], "txt.norm1");
  const Tensor q = head_projection(ctx, kImg.q, kImg.nq, xn, H, hd, "img.q");
  const Tensor k = head_projection(ctx, kImg.k, kImg.nk, xn, H, hd, "img.k");
  const Tensor v = head_projection(ctx, kImg.v, "", xn, H, hd, "img.v");
  const Tensor eq = head_projection(ctx, kTxt.q, kTxt.nq, cn, H, hd, "txt.q");
  const Tensor ek = head_projection(ctx, kTxt.k, kTxt.nk, cn, H, hd, "txt.k");
  const Tensor ev = head_projection(ctx, kTxt.v, "", cn, H, hd, "txt.v");
  const Tensor* txt_qkv[3] = {&eq, &ek, &ev};
  const Tensor* img_qkv[3] = {&q, &k, &v};
  const Tensor o = joint_attention(ctx, j, txt_qkv, img_qkv, in.at("rope_cos"), in.at("rope_sin"), H, hd);

  const Tensor o_x = gather_rows(ctx, o, j.img, B, Ni, "img.attn");
  const Tensor o_c = gather_rows(ctx, o, j.txt, B, Nt, "txt.attn");
  Tensor px = ctx.act("img.attn_out", {B, Ni, D}), pc = ctx.act("txt.attn_out", {B, Nt, D});
  ctx.linear(kImg.out, px, o_x);
  ctx.linear(kTxt.out, pc, o_c);

  Tensor x_out = as_stream(out.at("img"), B, D), c_out = as_stream(out.at("txt"), B, D);
  // The residual after attention: in place in the output, or kept apart for the MLP norm's backward.
  Tensor x1 = train ? ctx.act("img.res1", x.shape()) : x_out, c1 = train ? ctx.act("txt.res1", c.shape()) : c_out;
  be.gated_add(x1, x, mx[2], px);
  be.gated_add(c1, c, mc[2], pc);
  const Tensor fx = feed_forward(ctx, kImg.ff, norm_modulate(ctx, x1, mx[3], mx[4], "img.norm2"), F, "img.ff");
  const Tensor fc = feed_forward(ctx, kTxt.ff, norm_modulate(ctx, c1, mc[3], mc[4], "txt.norm2"), F, "txt.ff");
  be.gated_add(x_out, x1, mx[5], fx);
  be.gated_add(c_out, c1, mc[5], fc);
}

// The forward in reverse over its saved activations. Per stream: the MLP residual (gate 5, MLP, norm 2 with chunks
// 3, 4), the attention residual (gate 2, output projection); then the joint attention and RoPE; per stream again
// the q/k/v projections with their head norms, norm 1 (chunks 0, 1) and the adaLN Linear.
void FluxDoubleBlock::backward(BlockContext& ctx, const NamedTensors& d_out, NamedTensors* d_in) const {
  const Dims d = stream_dims(d_out.at("img"), d_out.at("txt"), d_out.at("temb"), spec_, "FLUX double block backward");
  Backend& be = ctx.backend();
  const int64_t B = d.B, D = d.D, H = spec_.num_heads, hd = spec_.head_dim, F = spec_.mlp_dim();
  const JointRows j = joint_rows(be, B, d.Nt, d.Ni);
  const Tensor temb_silu = ctx.act("temb.silu", {B, D});
  const Tensor dO = ctx.act("joint.d_attn", {B * j.L, H, hd});
  Tensor dO_rows = dO.view({B * j.L, D});

  struct StreamGrad {
    Tensor dres;                 // ∂L/∂ of the stream's residual, [B, n, D]
    std::vector<Tensor> dmod;    // the six chunk gradients [B, D]
  };
  StreamGrad g[2];
  const Stream* streams[2] = {&kImg, &kTxt};
  const int64_t n_of[2] = {d.Ni, d.Nt};
  const Tensor* rows_of[2] = {&j.img, &j.txt};
  for (int s = 0; s < 2; ++s) {
    const Stream& st = *streams[s];
    const int64_t n = n_of[s];
    const Shape sh{B, n, D};
    const std::vector<Tensor> m = saved_modulation(ctx, B, D, 6, st.p);
    for (int i = 0; i < 6; ++i) g[s].dmod.push_back(ctx.act(sname(st, ".d_mod") + std::to_string(i), {B, D}));
    g[s].dres = ctx.act(sname(st, ".d_res"), sh);
    be.copy(g[s].dres, d_out.at(st.p));
    Tensor& dres = g[s].dres;
    // x_out = x1 + gate_mlp · ff(norm2(x1))
    const Tensor x1 = ctx.act(sname(st, ".res1"), sh), f = ctx.act(sname(st, ".ff.out"), sh);
    const Tensor df = gated_backward(ctx, dres, m[5], f, g[s].dmod[5], sname(st, ".d_ff_out"));
    Tensor dn2 = ctx.act(sname(st, ".d_norm2"), sh);
    feed_forward_backward(ctx, st.ff, df, dn2, ctx.act(sname(st, ".norm2"), sh), F, sname(st, ".ff"));
    norm_modulate_backward(ctx, dn2, &dres, x1, m[4], g[s].dmod[3], g[s].dmod[4], sname(st, ".norm2"));
    // x1 = x + gate_msa · out_proj(attention rows of the stream)
    const Tensor p = ctx.act(sname(st, ".attn_out"), sh);
    const Tensor dp = gated_backward(ctx, dres, m[2], p, g[s].dmod[2], sname(st, ".d_attn_out"));
    Tensor do_s = ctx.act(sname(st, ".d_attn"), sh);
    ctx.linear_backward(st.out, &do_s, dp, ctx.act(sname(st, ".attn"), sh), false);
    be.copy_rows(dO_rows, do_s.view({B * n, D}), *rows_of[s]);
  }

  Tensor dj[3];
  joint_attention_backward(ctx, j, dO, d_out.at("rope_cos"), d_out.at("rope_sin"), H, hd, dj);

  for (int s = 0; s < 2; ++s) {
    const Stream& st = *streams[s];
    const int64_t n = n_of[s];
    const Shape sh{B, n, D};
    const Tensor xn = ctx.act(sname(st, ".norm1"), sh);
    Tensor dxn = ctx.act(sname(st, ".d_norm1"), sh);
    const char* lin[3] = {st.q, st.k, st.v};
    const char* norm[3] = {st.nq, st.nk, ""};
    const char* name[3] = {".q", ".k", ".v"};
    for (int i = 0; i < 3; ++i) {
      Tensor dproj = ctx.act(sname(st, ".d") + name[i], {B * n, H, hd});
      Tensor dproj_rows = dproj.view({B * n, D});  // the joint gradient's rows of this stream
      be.embedding(dproj_rows, *rows_of[s], dj[i].view({B * j.L, D}));
      head_projection_backward(ctx, lin[i], norm[i], dproj, dxn, xn, /*accumulate=*/i > 0, sname(st, name[i]));
    }
    const std::vector<Tensor> m = saved_modulation(ctx, B, D, 6, st.p);
    const Tensor x = ctx.act(sname(st, ".in"), sh);
    norm_modulate_backward(ctx, dxn, d_in ? &g[s].dres : nullptr, x, m[1], g[s].dmod[0], g[s].dmod[1],
                           sname(st, ".norm1"));
    modulation_backward(ctx, st.mod, g[s].dmod, temb_silu, st.p);
    if (d_in) be.copy(d_in->at(st.p), g[s].dres);
  }
}

FluxSingleBlock::FluxSingleBlock(const FluxSpec& spec) : spec_(spec) {
  const int64_t D = spec.inner_dim(), F = spec.mlp_dim();
  linears_ = with_bias({{"norm.linear", {D, 3 * D}},
                        {"proj_mlp", {D, F}},
                        {"attn.to_q", {D, D}},
                        {"attn.to_k", {D, D}},
                        {"attn.to_v", {D, D}},
                        {"proj_out", {D + F, D}}});
  for (const char* n : {"attn.norm_q.weight", "attn.norm_k.weight"}) params_.push_back({n, {spec.head_dim}});
}

namespace {

// [attention, mlp] along features: each joint row of cat [rows, D + F] is 1 + F/D rows of D (F is a multiple of
// D: kMlpRatio · D). The rows of cat seen as [rows·(1 + F/D), D] where the attention part and the MLP parts go.
struct CatRows {
  Tensor attn, mlp;  // I32 [rows], [rows · F/D]
};

CatRows cat_rows(Backend& be, int64_t rows, int64_t D, int64_t F) {
  const int64_t per = 1 + F / D;
  std::vector<int32_t> a, m;
  for (int64_t r = 0; r < rows; ++r) {
    a.push_back(static_cast<int32_t>(r * per));
    for (int64_t f = 0; f < F / D; ++f) m.push_back(static_cast<int32_t>(r * per + 1 + f));
  }
  return {i32(be, a), i32(be, m)};
}

}  // namespace

void FluxSingleBlock::forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const {
  const Dims d = check_inputs(in, spec_, "FLUX single block");
  Backend& be = ctx.backend();
  const bool train = ctx.training();
  const int64_t B = d.B, D = d.D, H = spec_.num_heads, hd = spec_.head_dim, F = spec_.mlp_dim();
  const Tensor x = as_stream(in.at("img"), B, D), c = as_stream(in.at("txt"), B, D);
  const JointRows j = joint_rows(be, B, d.Nt, d.Ni);

  // h = [c; x] per sample, [B, L, D].
  Tensor h = ctx.act("joint.h", {B, j.L, D});
  be.copy_rows(h, c, j.txt);
  be.copy_rows(h, x, j.img);
  Tensor temb_silu = ctx.act("temb.silu", in.at("temb").shape());
  be.silu(temb_silu, in.at("temb"));
  const std::vector<Tensor> m = modulation(ctx, "norm.linear", temb_silu, 3, "joint");  // shift, scale, gate
  const Tensor hn = norm_modulate(ctx, h, m[0], m[1], "joint.norm");

  const int64_t rows = B * j.L;
  Tensor mlp = ctx.act("joint.mlp", {rows, F});
  ctx.linear("proj_mlp", mlp, hn);
  Tensor mlp_act = train ? ctx.act("joint.mlp.act", {rows, F}) : mlp;
  be.gelu_tanh(mlp_act, mlp);
  const Tensor q = head_projection(ctx, "attn.to_q", "attn.norm_q.weight", hn, H, hd, "joint.q_pre");
  const Tensor k = head_projection(ctx, "attn.to_k", "attn.norm_k.weight", hn, H, hd, "joint.k_pre");
  const Tensor v = head_projection(ctx, "attn.to_v", "", hn, H, hd, "joint.v_pre");
  // Already in joint order: one "stream" that is the whole sequence.
  const JointRows all = all_rows(be, B, j.L);
  const Tensor* qkv[3] = {&q, &k, &v};
  const Tensor a = joint_attention(ctx, all, nullptr, qkv, in.at("rope_cos"), in.at("rope_sin"), H, hd);

  const CatRows cr = cat_rows(be, rows, D, F);
  Tensor cat = ctx.act("joint.cat", {rows, D + F});
  Tensor cat_view = cat.view({rows * (1 + F / D), D});
  be.copy_rows(cat_view, a.view({rows, D}), cr.attn);
  be.copy_rows(cat_view, mlp_act.view({rows * (F / D), D}), cr.mlp);
  Tensor p = ctx.act("joint.proj_out", {B, j.L, D});
  ctx.linear("proj_out", p, cat);
  // The residual: in place, or into its own buffer where the backward needs h.
  Tensor h_out = train ? ctx.act("joint.out", {B, j.L, D}) : h;
  be.gated_add(h_out, h, m[2], p);

  Tensor x_out = as_stream(out.at("img"), B, D), c_out = as_stream(out.at("txt"), B, D);
  be.embedding(c_out, j.txt, h_out.view({rows, D}));
  be.embedding(x_out, j.img, h_out.view({rows, D}));
}

// The forward in reverse: the residual gate, proj_out split back into the attention and MLP features, the MLP
// branch and the attention branch (RoPE, head norms, q/k/v) into ∂L/∂hn, the norm (chunks 0, 1), the adaLN Linear.
void FluxSingleBlock::backward(BlockContext& ctx, const NamedTensors& d_out, NamedTensors* d_in) const {
  const Dims d = stream_dims(d_out.at("img"), d_out.at("txt"), d_out.at("temb"), spec_, "FLUX single block backward");
  Backend& be = ctx.backend();
  const int64_t B = d.B, D = d.D, H = spec_.num_heads, hd = spec_.head_dim, F = spec_.mlp_dim();
  const JointRows j = joint_rows(be, B, d.Nt, d.Ni);
  const int64_t rows = B * j.L;
  const Shape sh{B, j.L, D};
  const std::vector<Tensor> m = saved_modulation(ctx, B, D, 3, "joint");
  std::vector<Tensor> dm;
  for (int i = 0; i < 3; ++i) dm.push_back(ctx.act("joint.d_mod" + std::to_string(i), {B, D}));

  Tensor dh = ctx.act("joint.d_h", sh);  // ∂L/∂h, from the outputs' rows first
  Tensor dh_rows = dh.view({rows, D});
  be.copy_rows(dh_rows, d_out.at("txt").view({B * d.Nt, D}), j.txt);
  be.copy_rows(dh_rows, d_out.at("img").view({B * d.Ni, D}), j.img);
  const Tensor dp = gated_backward(ctx, dh, m[2], ctx.act("joint.proj_out", sh), dm[2], "joint.d_proj_out");
  Tensor dcat = ctx.act("joint.d_cat", {rows, D + F});
  ctx.linear_backward("proj_out", &dcat, dp, ctx.act("joint.cat", {rows, D + F}), false);
  const CatRows cr = cat_rows(be, rows, D, F);
  const Tensor dcat_view = dcat.view({rows * (1 + F / D), D});
  Tensor da = ctx.act("joint.d_a", {rows, H, hd}), dmlp = ctx.act("joint.d_mlp", {rows, F});
  Tensor da_rows = da.view({rows, D}), dmlp_rows = dmlp.view({rows * (F / D), D});
  be.embedding(da_rows, cr.attn, dcat_view);
  be.embedding(dmlp_rows, cr.mlp, dcat_view);

  const Tensor hn = ctx.act("joint.norm", sh);
  Tensor dhn = ctx.act("joint.d_norm", sh);
  be.gelu_tanh_backward(dmlp, dmlp, ctx.act("joint.mlp", {rows, F}));
  ctx.linear_backward("proj_mlp", &dhn, dmlp, hn, false);

  Tensor dj[3];
  joint_attention_backward(ctx, all_rows(be, B, j.L), da, d_out.at("rope_cos"), d_out.at("rope_sin"), H, hd, dj);
  head_projection_backward(ctx, "attn.to_q", "attn.norm_q.weight", dj[0], dhn, hn, true, "joint.q_pre");
  head_projection_backward(ctx, "attn.to_k", "attn.norm_k.weight", dj[1], dhn, hn, true, "joint.k_pre");
  head_projection_backward(ctx, "attn.to_v", "", dj[2], dhn, hn, true, "joint.v_pre");

  norm_modulate_backward(ctx, dhn, d_in ? &dh : nullptr, ctx.act("joint.h", sh), m[1], dm[0], dm[1], "joint.norm");
  modulation_backward(ctx, "norm.linear", dm, ctx.act("temb.silu", {B, D}), "joint");
  if (!d_in) return;
  Tensor& dtxt = d_in->at("txt");
  Tensor& dimg = d_in->at("img");
  be.embedding(dtxt, j.txt, dh_rows);
  be.embedding(dimg, j.img, dh_rows);
}

}  // namespace omni
