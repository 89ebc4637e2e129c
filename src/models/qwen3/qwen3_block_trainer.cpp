#include "models/qwen3/qwen3_block_trainer.h"

#include <algorithm>

#include "core/error.h"
#include "models/qwen3/qwen3_names.h"
#include "quant/qdq_grad.h"

namespace omni {
namespace {

// Indices into the kBlockLinears order.
enum LinearIndex { kQ = 0, kK, kV, kO, kGate, kUp, kDown };

std::vector<float> to_f32_vector(const Tensor& t, const std::string& name, const Shape& shape) {
  OMNI_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16 || t.dtype() == DType::F16, "block tensor \"",
             name, "\" has dtype ", dtype_name(t.dtype()), ", expected F32, BF16 or F16");
  OMNI_CHECK(t.shape() == shape, "block tensor \"", name, "\" has shape ", shape_str(t.shape()), ", expected ",
             shape_str(shape));
  const Tensor f = t.dtype() == DType::F32 ? t : t.to(DType::F32);
  const float* p = f.data<float>();
  return std::vector<float>(p, p + f.numel());
}

}  // namespace

Qwen3BlockWeightsF32 read_qwen3_block_weights(const Qwen3Config& c, int64_t layer,
                                              const std::function<Tensor(const std::string&)>& get) {
  const int64_t D = c.hidden_size, hd = c.head_dim, I = c.intermediate_size;
  const int64_t qo = c.num_attention_heads * hd, kvo = c.num_key_value_heads * hd;
  auto read = [&](std::string_view suffix, const Shape& shape) {
    const std::string name = qwen3::block_tensor(layer, suffix);
    return to_f32_vector(get(name), name, shape);
  };
  Qwen3BlockWeightsF32 w;
  w.input_layernorm = read("input_layernorm.weight", {D});
  w.post_attention_layernorm = read("post_attention_layernorm.weight", {D});
  w.q_norm = read("self_attn.q_norm.weight", {hd});
  w.k_norm = read("self_attn.k_norm.weight", {hd});
  const std::array<Shape, 7> shapes = {Shape{qo, D}, Shape{kvo, D}, Shape{kvo, D}, Shape{D, qo},
                                       Shape{I, D},  Shape{I, D},   Shape{D, I}};
  for (size_t i = 0; i < 7; ++i)
    w.linears[i] = read(std::string(qwen3::kBlockLinears[i]) + ".weight", shapes[i]);
  return w;
}

Qwen3BlockTrainer::Qwen3BlockTrainer(const Qwen3Config& config, Qwen3BlockWeightsF32 weights,
                                     const QuantScheme& scheme, Backend& backend)
    : Qwen3BlockTrainer(
          config, std::move(weights),
          [&] {
            std::array<LinearQuantSpec, 7> specs;
            for (auto& s : specs) s = {true, scheme};
            return specs;
          }(),
          backend) {}

Qwen3BlockTrainer::Qwen3BlockTrainer(const Qwen3Config& config, Qwen3BlockWeightsF32 weights,
                                     const std::array<LinearQuantSpec, 7>& specs, Backend& backend)
    : backend_(backend), config_(config), norms_(std::move(weights)) {
  const auto& c = config_;
  OMNI_CHECK(!c.attention_bias, "Qwen3BlockTrainer: attention_bias = true is not supported");
  OMNI_CHECK(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0,
             "Qwen3BlockTrainer: ", c.num_attention_heads, " query heads are not a multiple of ",
             c.num_key_value_heads, " kv heads");
  const int64_t D = c.hidden_size, hd = c.head_dim, I = c.intermediate_size;
  const int64_t qo = c.num_attention_heads * hd, kvo = c.num_key_value_heads * hd;
  const std::array<std::pair<int64_t, int64_t>, 7> nk = {std::pair{qo, D}, {kvo, D}, {kvo, D}, {D, qo},
                                                          {I, D},          {I, D},   {D, I}};
  OMNI_CHECK(static_cast<int64_t>(norms_.input_layernorm.size()) == D &&
                 static_cast<int64_t>(norms_.post_attention_layernorm.size()) == D &&
                 static_cast<int64_t>(norms_.q_norm.size()) == hd && static_cast<int64_t>(norms_.k_norm.size()) == hd,
             "Qwen3BlockTrainer: norm weights do not match hidden_size ", D, " / head_dim ", hd);
  for (size_t i = 0; i < 7; ++i) {
    TunableLinear& L = linears_[i];
    L.name = std::string(qwen3::kBlockLinears[i]);
    L.out_features = nk[i].first;
    L.in_features = nk[i].second;
    L.spec = specs[i];
    const int64_t n = L.out_features * L.in_features;
    OMNI_CHECK(static_cast<int64_t>(norms_.linears[i].size()) == n, "Qwen3BlockTrainer: ", L.name, " has ",
               norms_.linears[i].size(), " weights, expected [", L.out_features, ", ", L.in_features, "]");
    L.weight = std::move(norms_.linears[i]);
    norms_.linears[i].clear();
    L.weight_used = L.weight;
    if (L.spec.quantize) {
      L.spec.scheme.validate();
      L.groups = L.spec.scheme.num_groups_for(L.in_features);
      L.v.assign(static_cast<size_t>(n), 0.f);
      L.alpha.assign(static_cast<size_t>(L.out_features * L.groups), 1.f);
      L.beta = L.alpha;
      L.grad_v.assign(L.v.size(), 0.f);
      L.grad_alpha.assign(L.alpha.size(), 0.f);
      L.grad_beta.assign(L.beta.size(), 0.f);
    }
  }
}

Tensor& Qwen3BlockTrainer::shaped(Buffer& b, const Shape& shape) {
  const int64_t n = shape_numel(shape);
  if (!b.storage.defined() || b.storage.numel() < n) b.storage = backend_.alloc({n}, DType::F32);
  b.t = b.storage.slice_rows(0, n).view(shape);
  return b.t;
}

Tensor Qwen3BlockTrainer::to_backend(std::vector<float>& v, const Shape& shape, Buffer& b) {
  OMNI_CHECK(static_cast<int64_t>(v.size()) == shape_numel(shape), "Qwen3BlockTrainer: a weight has ", v.size(),
             " values, expected ", shape_str(shape));
  Tensor host = Tensor::borrow(v.data(), shape, DType::F32, nullptr);
  if (backend_.device() == Device::CPU) return host;
  Tensor& dev = shaped(b, shape);
  backend_.copy_from_cpu(dev, host);
  return dev;
}

TunableLinear& Qwen3BlockTrainer::linear(std::string_view name) {
  for (auto& L : linears_)
    if (L.name == name) return L;
  OMNI_FAIL("Qwen3BlockTrainer: no Linear named \"", name, "\"");
}

void Qwen3BlockTrainer::refresh_weights(WeightMode mode) {
  mode_ = mode;
  for (auto& L : linears_) {
    if (mode == WeightMode::Original || !L.spec.quantize) {
      L.weight_used = L.weight;
      continue;
    }
    for (auto& a : L.alpha) a = std::clamp(a, 0.f, 1.f);
    for (auto& b : L.beta) b = std::clamp(b, 0.f, 1.f);
    L.weight_used = fake_quantize(L.weight.data(), L.out_features, L.in_features, L.spec.scheme,
                                  {L.v.data(), L.alpha.data(), L.beta.data()});
  }
  s_.valid = false;  // saved activations belong to the old weights
}

Tensor Qwen3BlockTrainer::linear_input(int index) const {
  OMNI_CHECK(s_.valid, "Qwen3BlockTrainer::linear_input needs a forward with save_activations = true first");
  const Tensor* x = nullptr;
  switch (index) {
    case kQ:
    case kK:
    case kV: x = &s_.h1.t; break;
    case kO: x = &s_.att.t; break;
    case kGate:
    case kUp: x = &s_.h2.t; break;
    case kDown: x = &s_.act.t; break;
    default: OMNI_FAIL("Qwen3BlockTrainer::linear_input: index ", index, " is not in [0, 7)");
  }
  const int64_t K = linears_[static_cast<size_t>(index)].in_features;
  const Tensor rows = x->view({s_.B * s_.T, K});
  return backend_.device() == Device::CPU ? rows : backend_.to_cpu(rows);
}

void Qwen3BlockTrainer::zero_grads() {
  for (auto& L : linears_) {
    std::fill(L.grad_v.begin(), L.grad_v.end(), 0.f);
    std::fill(L.grad_alpha.begin(), L.grad_alpha.end(), 0.f);
    std::fill(L.grad_beta.begin(), L.grad_beta.end(), 0.f);
  }
}

// The block, as in qwen3_model.cpp, on N = B·T tokens:
//   h1 = rmsnorm(x, input_layernorm)
//   q_pre, k_pre, v = h1·Wqᵀ, h1·Wkᵀ, h1·Wvᵀ
//   q = rope(rmsnorm_per_head(q_pre, q_norm)),  k = rope(rmsnorm_per_head(k_pre, k_norm))
//   att = causal_gqa_attention(q, k, v)                (saves lse)
//   x2 = x + att·Woᵀ
//   h2 = rmsnorm(x2, post_attention_layernorm)
//   gate, up = h2·Wgᵀ, h2·Wuᵀ;  act = silu(gate)·up
//   y = x2 + act·Wdᵀ
// Head-split tensors are kept [B, T, H, hd] and viewed [B, T, H·hd] where a Linear reads or writes them.
Tensor Qwen3BlockTrainer::forward(const Tensor& x, bool save_activations) {
  const auto& c = config_;
  OMNI_CHECK(x.device() == Device::CPU && x.dtype() == DType::F32 && x.ndim() == 3 && x.dim(2) == c.hidden_size,
             "Qwen3BlockTrainer::forward: x must be CPU F32 [B, T, ", c.hidden_size, "], got ",
             dtype_name(x.dtype()), " ", shape_str(x.shape()));
  const int64_t B = x.dim(0), T = x.dim(1);
  const int64_t D = c.hidden_size, hd = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int64_t I = c.intermediate_size, qo = Hq * hd, kvo = Hkv * hd;
  const auto eps = static_cast<float>(c.rms_norm_eps);
  const auto theta = static_cast<float>(c.rope_theta);
  Backend& be = backend_;
  Saved& s = s_;
  s.B = B;
  s.T = T;
  s.valid = false;

  // The weights as they are now; backward() uses the same tensors.
  forward_norms_[0] = to_backend(norms_.input_layernorm, {D}, norm_w_[0]);
  forward_norms_[1] = to_backend(norms_.post_attention_layernorm, {D}, norm_w_[1]);
  forward_norms_[2] = to_backend(norms_.q_norm, {hd}, norm_w_[2]);
  forward_norms_[3] = to_backend(norms_.k_norm, {hd}, norm_w_[3]);
  for (size_t i = 0; i < 7; ++i) {
    TunableLinear& L = linears_[i];
    forward_w_[i] = to_backend(L.weight_used, {L.out_features, L.in_features}, used_w_[i]);
  }
  const Tensor &ln1 = forward_norms_[0], &ln2 = forward_norms_[1], &qn = forward_norms_[2], &kn = forward_norms_[3];
  const std::array<Tensor, 7>& W = forward_w_;

  Tensor& xs = shaped(s.x, {B, T, D});
  be.copy_from_cpu(xs, x);
  Tensor& h1 = shaped(s.h1, {B, T, D});
  be.rmsnorm_forward_train(h1, shaped(s.rstd1, {B, T}), xs, ln1, eps);

  Tensor& q_pre = shaped(s.q_pre, {B, T, Hq, hd});
  Tensor& k_pre = shaped(s.k_pre, {B, T, Hkv, hd});
  Tensor& v = shaped(s.v, {B, T, Hkv, hd});
  Tensor q_pre_rows = q_pre.view({B, T, qo}), k_pre_rows = k_pre.view({B, T, kvo}), v_rows = v.view({B, T, kvo});
  be.linear_forward_train(q_pre_rows, h1, W[kQ]);
  be.linear_forward_train(k_pre_rows, h1, W[kK]);
  be.linear_forward_train(v_rows, h1, W[kV]);

  Tensor& q = shaped(s.q, {B, T, Hq, hd});
  Tensor& k = shaped(s.k, {B, T, Hkv, hd});
  be.rmsnorm_forward_train(q, shaped(s.rstd_q, {B, T, Hq}), q_pre, qn, eps);
  be.rmsnorm_forward_train(k, shaped(s.rstd_k, {B, T, Hkv}), k_pre, kn, eps);
  be.rope_forward_train(q, theta);
  be.rope_forward_train(k, theta);

  Tensor& att = shaped(s.att, {B, T, Hq, hd});
  be.attention_forward_train(att, shaped(s.lse, {B, T, Hq}), q, k, v);

  Tensor& x2 = shaped(s.x2, {B, T, D});
  be.linear_forward_train(x2, att.view({B, T, qo}), W[kO]);
  be.add_forward(x2, x2, xs);

  Tensor& h2 = shaped(s.h2, {B, T, D});
  be.rmsnorm_forward_train(h2, shaped(s.rstd2, {B, T}), x2, ln2, eps);
  Tensor& gate = shaped(s.gate, {B, T, I});
  Tensor& up = shaped(s.up, {B, T, I});
  Tensor& act = shaped(s.act, {B, T, I});
  be.linear_forward_train(gate, h2, W[kGate]);
  be.linear_forward_train(up, h2, W[kUp]);
  be.silu_mul_forward(act, gate, up);

  Tensor y = be.alloc({B, T, D}, DType::F32);
  be.linear_forward_train(y, act, W[kDown]);
  be.add_forward(y, y, x2);
  s.valid = save_activations;
  return be.device() == Device::CPU ? y : be.to_cpu(y);
}

void Qwen3BlockTrainer::linear_backward(int idx, Tensor* dx, const Tensor& dout, const Tensor& x,
                                        bool accumulate_dx) {
  TunableLinear& L = linears_[static_cast<size_t>(idx)];
  const bool want_params = L.spec.quantize && mode_ == WeightMode::FakeQuant;
  Tensor* gw = want_params ? &shaped(scratch_grad_w_, {L.out_features, L.in_features}) : nullptr;
  backend_.linear_backward(dx, gw, dout, x, forward_w_[static_cast<size_t>(idx)], accumulate_dx, false);
  if (!want_params) return;
  const Tensor g = backend_.device() == Device::CPU ? *gw : backend_.to_cpu(*gw);
  fake_quant_backward(L.weight.data(), L.out_features, L.in_features, L.spec.scheme,
                      {L.v.data(), L.alpha.data(), L.beta.data()}, g.data<float>(), L.grad_v.data(),
                      L.grad_alpha.data(), L.grad_beta.data());
}

void Qwen3BlockTrainer::backward(const Tensor& dy_t, Tensor* dx_out) {
  const auto& c = config_;
  Saved& s = s_;
  OMNI_CHECK(s.valid, "Qwen3BlockTrainer::backward needs a forward with save_activations = true first (and no "
             "refresh_weights() in between)");
  OMNI_CHECK(dy_t.device() == Device::CPU && dy_t.dtype() == DType::F32 && dy_t.shape() == Shape({s.B, s.T, c.hidden_size}),
             "Qwen3BlockTrainer::backward: dy must be CPU F32 ", shape_str({s.B, s.T, c.hidden_size}), ", got ",
             dtype_name(dy_t.dtype()), " ", shape_str(dy_t.shape()));
  const int64_t B = s.B, T = s.T;
  const int64_t D = c.hidden_size, hd = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int64_t I = c.intermediate_size, qo = Hq * hd, kvo = Hkv * hd;
  const auto theta = static_cast<float>(c.rope_theta);
  Backend& be = backend_;
  Grads& g = g_;
  Tensor dy = dy_t;
  if (be.device() != Device::CPU) {
    dy = shaped(g.dy, {B, T, D});
    be.copy_from_cpu(dy, dy_t);
  }
  Tensor& d_act = shaped(g.act, {B, T, I});
  Tensor& d_up = shaped(g.up, {B, T, I});
  Tensor& d_h = shaped(g.h, {B, T, D});
  Tensor& d_x2 = shaped(g.x2, {B, T, D});
  Tensor& d_att = shaped(g.att, {B, T, Hq, hd});
  Tensor& d_q = shaped(g.q, {B, T, Hq, hd});
  Tensor& d_k = shaped(g.k, {B, T, Hkv, hd});
  Tensor& d_v = shaped(g.v, {B, T, Hkv, hd});

  // MLP: y = x2 + down(act)
  linear_backward(kDown, &d_act, dy, s.act.t, false);
  be.silu_mul_backward(d_act, d_up, d_act, s.gate.t, s.up.t);  // d_act now holds ∂L/∂gate
  linear_backward(kGate, &d_h, d_act, s.h2.t, false);
  linear_backward(kUp, &d_h, d_up, s.h2.t, true);
  be.copy(d_x2, dy);  // the residual path
  be.rmsnorm_backward(d_x2, nullptr, d_h, s.x2.t, forward_norms_[1], s.rstd2.t, true);

  // Attention: x2 = x + o(att)
  Tensor d_att_rows = d_att.view({B, T, qo});
  linear_backward(kO, &d_att_rows, d_x2, s.att.t.view({B, T, qo}), false);
  be.attention_backward(d_q, d_k, d_v, d_att, s.q.t, s.k.t, s.v.t, s.att.t, s.lse.t);
  be.rope_backward(d_q, theta);
  be.rope_backward(d_k, theta);
  be.rmsnorm_backward(d_q, nullptr, d_q, s.q_pre.t, forward_norms_[2], s.rstd_q.t, false);
  be.rmsnorm_backward(d_k, nullptr, d_k, s.k_pre.t, forward_norms_[3], s.rstd_k.t, false);
  linear_backward(kQ, &d_h, d_q.view({B, T, qo}), s.h1.t, false);
  linear_backward(kK, &d_h, d_k.view({B, T, kvo}), s.h1.t, true);
  linear_backward(kV, &d_h, d_v.view({B, T, kvo}), s.h1.t, true);
  if (dx_out) {
    Tensor dx = be.alloc({B, T, D}, DType::F32);
    be.copy(dx, d_x2);
    be.rmsnorm_backward(dx, nullptr, d_h, s.x.t, forward_norms_[0], s.rstd1.t, true);
    *dx_out = be.device() == Device::CPU ? dx : be.to_cpu(dx);
  }
}

}  // namespace omni
