#include "nn/flux_blocks.h"

#include <string>
#include <vector>

namespace omni {
namespace {

const char* const kNotYet =
    "the backward of the FLUX blocks is not written yet (AutoRound for diffusion transformers is the next part of "
    "the diffusion work); FLUX blocks run forward only";

std::vector<LinearDesc> with_bias(std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> l) {
  std::vector<LinearDesc> out;
  for (auto& [name, io] : l) out.push_back({name, io.first, io.second, true});
  return out;
}

// Where the rows of each stream sit in the joint sequence: sample b's text rows first, then its image rows.
struct JointRows {
  int64_t B = 0, Nt = 0, Ni = 0, L = 0;
  Tensor txt, img;  // I32 [B·Nt], [B·Ni] on the backend: the joint row of each stream row
};

JointRows joint_rows(Backend& be, int64_t B, int64_t Nt, int64_t Ni) {
  JointRows j{B, Nt, Ni, Nt + Ni, {}, {}};
  Tensor t = Tensor::empty({B * Nt}, DType::I32), i = Tensor::empty({B * Ni}, DType::I32);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t r = 0; r < Nt; ++r) t.data<int32_t>()[b * Nt + r] = static_cast<int32_t>(b * j.L + r);
    for (int64_t r = 0; r < Ni; ++r) i.data<int32_t>()[b * Ni + r] = static_cast<int32_t>(b * j.L + Nt + r);
  }
  j.txt = be.upload(t);
  j.img = be.upload(i);
  return j;
}

// Chunk `index` of `count` equal chunks of each row of m [B, count·D]: the rows b·count + index of m seen as
// [B·count, D], gathered into [B, D].
Tensor chunk(BlockContext& ctx, const Tensor& m, int64_t index, int64_t count, const std::string& name) {
  Backend& be = ctx.backend();
  const int64_t B = m.dim(0), D = m.dim(1) / count;
  Tensor ids = Tensor::empty({B}, DType::I32);
  for (int64_t b = 0; b < B; ++b) ids.data<int32_t>()[b] = static_cast<int32_t>(b * count + index);
  Tensor out = ctx.act(name, {B, D});
  be.embedding(out, be.upload(ids), m.view({B * count, D}));
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

// LN(x)·(1 + scale) + shift, x [B, T, D].
Tensor norm_modulate(BlockContext& ctx, const Tensor& x, const Tensor& shift, const Tensor& scale, const std::string& name) {
  Backend& be = ctx.backend();
  Tensor y = ctx.act(name, x.shape());
  be.layer_norm(y, x, FluxSpec::kNormEps);
  be.modulate(y, y, scale, shift);
  return y;
}

// q or k of one stream: linear, then RMSNorm over each head. Returns [rows, H, hd].
Tensor head_projection(BlockContext& ctx, const std::string& linear, const std::string& norm, const Tensor& x,
                       int64_t H, int64_t hd, const std::string& name) {
  const int64_t rows = x.numel() / x.dim(-1);
  Tensor flat = ctx.act(name, {rows, H * hd});
  ctx.linear(linear, flat, x);
  Tensor y = flat.view({rows, H, hd});
  if (!norm.empty()) ctx.backend().rms_norm(y, y, ctx.param(norm), FluxSpec::kNormEps);
  return y;
}

// MLP of a stream: net.2(gelu_tanh(net.0.proj(x))).
Tensor feed_forward(BlockContext& ctx, const std::string& prefix, const Tensor& x, int64_t F, const std::string& name) {
  Backend& be = ctx.backend();
  const int64_t B = x.dim(0), T = x.dim(1), D = x.dim(2);
  Tensor h = ctx.act(name + ".hidden", {B, T, F});
  ctx.linear(prefix + ".net.0.proj", h, x);
  be.gelu_tanh(h, h);
  Tensor y = ctx.act(name + ".out", {B, T, D});
  ctx.linear(prefix + ".net.2", y, h);
  return y;
}

// Q, K, V of the joint sequence from the two streams' rows, RoPE on Q and K, and full attention per sample.
// Returns the attention output [B·L, H, hd] in joint order.
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
  ctx.attention(out, qkv[0], qkv[1], qkv[2], nullptr);
  return out;
}

// Rows `rows` (I32, joint row of each stream row) of joint [B·L, D], as [B, n, D].
Tensor gather_rows(BlockContext& ctx, const Tensor& joint, const Tensor& rows, int64_t B, int64_t n,
                   const std::string& name) {
  const int64_t D = joint.numel() / joint.dim(0);
  Tensor out = ctx.act(name, {B, n, D});
  ctx.backend().embedding(out, rows, joint.view({joint.dim(0), D}));
  return out;
}

void check_inputs(const NamedTensors& in, const FluxSpec& s, const char* block) {
  const Tensor& img = in.at("img");
  const Tensor& txt = in.at("txt");
  const Tensor& temb = in.at("temb");
  const int64_t D = s.inner_dim();
  OMNI_CHECK(img.ndim() == 3 && img.dim(2) == D, block, ": img expected [B, Ni, ", D, "], found ",
             shape_str(img.shape()));
  OMNI_CHECK(txt.ndim() == 3 && txt.dim(0) == img.dim(0) && txt.dim(2) == D, block, ": txt expected [",
             img.dim(0), ", Nt, ", D, "], found ", shape_str(txt.shape()));
  OMNI_CHECK(temb.ndim() == 2 && temb.dim(0) == img.dim(0) && temb.dim(1) == D, block, ": temb expected [",
             img.dim(0), ", ", D, "], found ", shape_str(temb.shape()));
  const Shape rope{img.dim(0) * (img.dim(1) + txt.dim(1)), s.head_dim};
  OMNI_CHECK(in.at("rope_cos").shape() == rope && in.at("rope_sin").shape() == rope, block,
             ": rope tables expected ", shape_str(rope), ", found ", shape_str(in.at("rope_cos").shape()));
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

void FluxDoubleBlock::forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const {
  check_inputs(in, spec_, "FLUX double block");
  Backend& be = ctx.backend();
  const Tensor& x = in.at("img");
  const Tensor& c = in.at("txt");
  const int64_t B = x.dim(0), Ni = x.dim(1), Nt = c.dim(1), D = spec_.inner_dim(), H = spec_.num_heads,
                hd = spec_.head_dim, F = spec_.mlp_dim();
  const JointRows j = joint_rows(be, B, Nt, Ni);

  Tensor temb_silu = ctx.act("temb.silu", in.at("temb").shape());
  be.silu(temb_silu, in.at("temb"));
  // shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
  const std::vector<Tensor> mx = modulation(ctx, "norm1.linear", temb_silu, 6, "img");
  const std::vector<Tensor> mc = modulation(ctx, "norm1_context.linear", temb_silu, 6, "txt");

  const Tensor xn = norm_modulate(ctx, x, mx[0], mx[1], "img.norm1");
  const Tensor cn = norm_modulate(ctx, c, mc[0], mc[1], "txt.norm1");
  const Tensor q = head_projection(ctx, "attn.to_q", "attn.norm_q.weight", xn, H, hd, "img.q");
  const Tensor k = head_projection(ctx, "attn.to_k", "attn.norm_k.weight", xn, H, hd, "img.k");
  const Tensor v = head_projection(ctx, "attn.to_v", "", xn, H, hd, "img.v");
  const Tensor eq = head_projection(ctx, "attn.add_q_proj", "attn.norm_added_q.weight", cn, H, hd, "txt.q");
  const Tensor ek = head_projection(ctx, "attn.add_k_proj", "attn.norm_added_k.weight", cn, H, hd, "txt.k");
  const Tensor ev = head_projection(ctx, "attn.add_v_proj", "", cn, H, hd, "txt.v");
  const Tensor* txt_qkv[3] = {&eq, &ek, &ev};
  const Tensor* img_qkv[3] = {&q, &k, &v};
  const Tensor o = joint_attention(ctx, j, txt_qkv, img_qkv, in.at("rope_cos"), in.at("rope_sin"), H, hd);

  const Tensor o_x = gather_rows(ctx, o, j.img, B, Ni, "img.attn");
  const Tensor o_c = gather_rows(ctx, o, j.txt, B, Nt, "txt.attn");
  Tensor px = ctx.act("img.attn_out", {B, Ni, D}), pc = ctx.act("txt.attn_out", {B, Nt, D});
  ctx.linear("attn.to_out.0", px, o_x);
  ctx.linear("attn.to_add_out", pc, o_c);

  Tensor& x_out = out.at("img");
  Tensor& c_out = out.at("txt");
  be.gated_add(x_out, x, mx[2], px);
  be.gated_add(c_out, c, mc[2], pc);
  const Tensor fx = feed_forward(ctx, "ff", norm_modulate(ctx, x_out, mx[3], mx[4], "img.norm2"), F, "img.ff");
  const Tensor fc = feed_forward(ctx, "ff_context", norm_modulate(ctx, c_out, mc[3], mc[4], "txt.norm2"), F, "txt.ff");
  be.gated_add(x_out, x_out, mx[5], fx);
  be.gated_add(c_out, c_out, mc[5], fc);
}

void FluxDoubleBlock::backward(BlockContext&, const NamedTensors&, NamedTensors*) const { OMNI_FAIL(kNotYet); }

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

void FluxSingleBlock::forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const {
  check_inputs(in, spec_, "FLUX single block");
  Backend& be = ctx.backend();
  const Tensor& x = in.at("img");
  const Tensor& c = in.at("txt");
  const int64_t B = x.dim(0), Ni = x.dim(1), Nt = c.dim(1), D = spec_.inner_dim(), H = spec_.num_heads,
                hd = spec_.head_dim, F = spec_.mlp_dim();
  const JointRows j = joint_rows(be, B, Nt, Ni);

  // h = [c; x] per sample, [B, L, D].
  Tensor h = ctx.act("joint.h", {B, j.L, D});
  be.copy_rows(h, c, j.txt);
  be.copy_rows(h, x, j.img);
  Tensor temb_silu = ctx.act("temb.silu", in.at("temb").shape());
  be.silu(temb_silu, in.at("temb"));
  const std::vector<Tensor> m = modulation(ctx, "norm.linear", temb_silu, 3, "joint");  // shift, scale, gate
  const Tensor hn = norm_modulate(ctx, h, m[0], m[1], "joint.norm");

  Tensor mlp = ctx.act("joint.mlp", {B * j.L, F});
  ctx.linear("proj_mlp", mlp, hn);
  be.gelu_tanh(mlp, mlp);
  const Tensor q = head_projection(ctx, "attn.to_q", "attn.norm_q.weight", hn, H, hd, "joint.q_pre");
  const Tensor k = head_projection(ctx, "attn.to_k", "attn.norm_k.weight", hn, H, hd, "joint.k_pre");
  const Tensor v = head_projection(ctx, "attn.to_v", "", hn, H, hd, "joint.v_pre");
  // Already in joint order: one "stream" that is the whole sequence.
  const JointRows all{B, 0, j.L, j.L, Tensor(), be.upload([&] {
                        Tensor t = Tensor::empty({B * j.L}, DType::I32);
                        for (int64_t r = 0; r < B * j.L; ++r) t.data<int32_t>()[r] = static_cast<int32_t>(r);
                        return t;
                      }())};
  const Tensor* qkv[3] = {&q, &k, &v};
  const Tensor a = joint_attention(ctx, all, nullptr, qkv, in.at("rope_cos"), in.at("rope_sin"), H, hd);

  // [a, mlp] along features: each joint row is 1 + F/D rows of D (F is a multiple of D: kMlpRatio · D).
  const int64_t per = 1 + F / D, rows = B * j.L;
  Tensor cat = ctx.act("joint.cat", {rows, D + F});
  Tensor a_at = Tensor::empty({rows}, DType::I32), m_at = Tensor::empty({rows * (F / D)}, DType::I32);
  for (int64_t r = 0; r < rows; ++r) {
    a_at.data<int32_t>()[r] = static_cast<int32_t>(r * per);
    for (int64_t f = 0; f < F / D; ++f) m_at.data<int32_t>()[r * (F / D) + f] = static_cast<int32_t>(r * per + 1 + f);
  }
  Tensor cat_rows = cat.view({rows * per, D});
  be.copy_rows(cat_rows, a.view({rows, D}), be.upload(a_at));
  be.copy_rows(cat_rows, mlp.view({rows * (F / D), D}), be.upload(m_at));
  Tensor p = ctx.act("joint.proj_out", {B, j.L, D});
  ctx.linear("proj_out", p, cat);
  be.gated_add(h, h, m[2], p);

  Tensor& x_out = out.at("img");
  Tensor& c_out = out.at("txt");
  be.embedding(c_out, j.txt, h.view({rows, D}));
  be.embedding(x_out, j.img, h.view({rows, D}));
}

void FluxSingleBlock::backward(BlockContext&, const NamedTensors&, NamedTensors*) const { OMNI_FAIL(kNotYet); }

}  // namespace omni
