#include "models/qwen3/qwen3_block_trainer.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/attention_backward.h"
#include "backends/cpu/linear_backward.h"
#include "backends/cpu/rmsnorm_backward.h"
#include "backends/cpu/rope_backward.h"
#include "backends/cpu/silu_mul_backward.h"
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

template <class V>
void resize(V& v, int64_t n) {
  v.resize(static_cast<size_t>(n));
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
                                     const QuantScheme& scheme)
    : Qwen3BlockTrainer(config, std::move(weights), [&] {
        std::array<LinearQuantSpec, 7> specs;
        for (auto& s : specs) s = {true, scheme};
        return specs;
      }()) {}

Qwen3BlockTrainer::Qwen3BlockTrainer(const Qwen3Config& config, Qwen3BlockWeightsF32 weights,
                                     const std::array<LinearQuantSpec, 7>& specs)
    : config_(config), norms_(std::move(weights)) {
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
  int64_t max_nk = 0;
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
      max_nk = std::max(max_nk, n);
    }
  }
  resize(scratch_grad_w_, max_nk);
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

const std::vector<float>& Qwen3BlockTrainer::linear_input(int index) const {
  OMNI_CHECK(s_.valid, "Qwen3BlockTrainer::linear_input needs a forward with save_activations = true first");
  switch (index) {
    case kQ:
    case kK:
    case kV: return s_.h1;
    case kO: return s_.att;
    case kGate:
    case kUp: return s_.h2;
    case kDown: return s_.act;
    default: OMNI_FAIL("Qwen3BlockTrainer::linear_input: index ", index, " is not in [0, 7)");
  }
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
Tensor Qwen3BlockTrainer::forward(const Tensor& x, bool save_activations) {
  const auto& c = config_;
  OMNI_CHECK(x.device() == Device::CPU && x.dtype() == DType::F32 && x.ndim() == 3 && x.dim(2) == c.hidden_size,
             "Qwen3BlockTrainer::forward: x must be CPU F32 [B, T, ", c.hidden_size, "], got ",
             dtype_name(x.dtype()), " ", shape_str(x.shape()));
  const int64_t B = x.dim(0), T = x.dim(1), N = B * T;
  const int64_t D = c.hidden_size, hd = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int64_t I = c.intermediate_size, qo = Hq * hd, kvo = Hkv * hd;
  const auto eps = static_cast<float>(c.rms_norm_eps);
  const auto& W = linears_;
  Saved& s = s_;
  s.B = B;
  s.T = T;
  s.valid = false;
  resize(s.x, N * D);
  std::memcpy(s.x.data(), x.data<float>(), static_cast<size_t>(N * D) * sizeof(float));
  resize(s.h1, N * D);
  resize(s.rstd1, N);
  rmsnorm_forward_train(s.h1.data(), s.rstd1.data(), s.x.data(), norms_.input_layernorm.data(), N, D, eps);

  resize(s.q_pre, N * qo);
  resize(s.k_pre, N * kvo);
  resize(s.v, N * kvo);
  linear_forward_train(s.q_pre.data(), s.h1.data(), W[kQ].weight_used.data(), N, D, qo);
  linear_forward_train(s.k_pre.data(), s.h1.data(), W[kK].weight_used.data(), N, D, kvo);
  linear_forward_train(s.v.data(), s.h1.data(), W[kV].weight_used.data(), N, D, kvo);

  resize(s.q, N * qo);
  resize(s.k, N * kvo);
  resize(s.rstd_q, N * Hq);
  resize(s.rstd_k, N * Hkv);
  rmsnorm_forward_train(s.q.data(), s.rstd_q.data(), s.q_pre.data(), norms_.q_norm.data(), N * Hq, hd, eps);
  rmsnorm_forward_train(s.k.data(), s.rstd_k.data(), s.k_pre.data(), norms_.k_norm.data(), N * Hkv, hd, eps);
  const RopeTable rope = make_rope_table(T, hd, static_cast<float>(c.rope_theta));
  rope_forward_train(s.q.data(), rope, B, T, Hq, hd);
  rope_forward_train(s.k.data(), rope, B, T, Hkv, hd);

  resize(s.att, N * qo);
  resize(s.lse, N * Hq);
  attention_forward_train(s.att.data(), s.lse.data(), s.q.data(), s.k.data(), s.v.data(), B, T, Hq, Hkv, hd);

  resize(s.x2, N * D);
  linear_forward_train(s.x2.data(), s.att.data(), W[kO].weight_used.data(), N, qo, D);
  for (int64_t i = 0; i < N * D; ++i) s.x2[static_cast<size_t>(i)] += s.x[static_cast<size_t>(i)];

  resize(s.h2, N * D);
  resize(s.rstd2, N);
  rmsnorm_forward_train(s.h2.data(), s.rstd2.data(), s.x2.data(), norms_.post_attention_layernorm.data(), N, D, eps);
  resize(s.gate, N * I);
  resize(s.up, N * I);
  resize(s.act, N * I);
  linear_forward_train(s.gate.data(), s.h2.data(), W[kGate].weight_used.data(), N, D, I);
  linear_forward_train(s.up.data(), s.h2.data(), W[kUp].weight_used.data(), N, D, I);
  silu_mul_forward_train(s.act.data(), s.gate.data(), s.up.data(), N * I);

  Tensor y = Tensor::empty({B, T, D}, DType::F32);
  float* yp = y.data<float>();
  linear_forward_train(yp, s.act.data(), W[kDown].weight_used.data(), N, I, D);
  for (int64_t i = 0; i < N * D; ++i) yp[i] += s.x2[static_cast<size_t>(i)];
  s.valid = save_activations;
  return y;
}

void Qwen3BlockTrainer::backward(const Tensor& dy_t, Tensor* dx_out) {
  const auto& c = config_;
  Saved& s = s_;
  OMNI_CHECK(s.valid, "Qwen3BlockTrainer::backward needs a forward with save_activations = true first (and no "
             "refresh_weights() in between)");
  OMNI_CHECK(dy_t.device() == Device::CPU && dy_t.dtype() == DType::F32 && dy_t.shape() == Shape({s.B, s.T, c.hidden_size}),
             "Qwen3BlockTrainer::backward: dy must be CPU F32 ", shape_str({s.B, s.T, c.hidden_size}), ", got ",
             dtype_name(dy_t.dtype()), " ", shape_str(dy_t.shape()));
  const int64_t B = s.B, T = s.T, N = B * T;
  const int64_t D = c.hidden_size, hd = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const int64_t I = c.intermediate_size, qo = Hq * hd, kvo = Hkv * hd;
  const float* dy = dy_t.data<float>();

  // A Linear's backward: dX (+)= dY·Ŵ, and for a quantized Linear G = dYᵀ·X folded into ∂L/∂V, alpha, beta.
  auto linear_back = [&](int idx, float* dx, const float* dout, const float* xin, int64_t M, bool accumulate_dx) {
    TunableLinear& L = linears_[static_cast<size_t>(idx)];
    const bool want_params = L.spec.quantize && mode_ == WeightMode::FakeQuant;
    linear_backward(dx, want_params ? scratch_grad_w_.data() : nullptr, dout, xin, L.weight_used.data(), M,
                    L.in_features, L.out_features, accumulate_dx, false);
    if (want_params)
      fake_quant_backward(L.weight.data(), L.out_features, L.in_features, L.spec.scheme,
                          {L.v.data(), L.alpha.data(), L.beta.data()}, scratch_grad_w_.data(), L.grad_v.data(),
                          L.grad_alpha.data(), L.grad_beta.data());
  };

  Grads& g = g_;
  resize(g.act, N * I);
  resize(g.up, N * I);
  resize(g.h, N * D);
  resize(g.att, N * qo);
  resize(g.q, N * qo);
  resize(g.k, N * kvo);
  resize(g.v, N * kvo);

  // MLP: y = x2 + down(act)
  linear_back(kDown, g.act.data(), dy, s.act.data(), N, false);
  silu_mul_backward(g.act.data(), g.up.data(), g.act.data(), s.gate.data(), s.up.data(), N * I);  // act -> d gate
  linear_back(kGate, g.h.data(), g.act.data(), s.h2.data(), N, false);
  linear_back(kUp, g.h.data(), g.up.data(), s.h2.data(), N, true);
  g.x2.assign(dy, dy + N * D);  // the residual path
  rmsnorm_backward(g.x2.data(), static_cast<float*>(nullptr), g.h.data(), s.x2.data(),
                   norms_.post_attention_layernorm.data(), s.rstd2.data(), N, D, true);

  // Attention: x2 = x + o(att)
  linear_back(kO, g.att.data(), g.x2.data(), s.att.data(), N, false);
  attention_backward(g.q.data(), g.k.data(), g.v.data(), g.att.data(), s.q.data(), s.k.data(), s.v.data(),
                     s.att.data(), s.lse.data(), B, T, Hq, Hkv, hd);
  const RopeTable rope = make_rope_table(T, hd, static_cast<float>(c.rope_theta));
  rope_backward(g.q.data(), rope, B, T, Hq, hd);
  rope_backward(g.k.data(), rope, B, T, Hkv, hd);
  rmsnorm_backward(g.q.data(), static_cast<float*>(nullptr), g.q.data(), s.q_pre.data(), norms_.q_norm.data(),
                   s.rstd_q.data(), N * Hq, hd, false);
  rmsnorm_backward(g.k.data(), static_cast<float*>(nullptr), g.k.data(), s.k_pre.data(), norms_.k_norm.data(),
                   s.rstd_k.data(), N * Hkv, hd, false);
  linear_back(kQ, g.h.data(), g.q.data(), s.h1.data(), N, false);
  linear_back(kK, g.h.data(), g.k.data(), s.h1.data(), N, true);
  linear_back(kV, g.h.data(), g.v.data(), s.h1.data(), N, true);
  if (dx_out) {
    *dx_out = Tensor::empty({B, T, D}, DType::F32);
    float* dx = dx_out->data<float>();
    std::memcpy(dx, g.x2.data(), static_cast<size_t>(N * D) * sizeof(float));
    rmsnorm_backward(dx, static_cast<float*>(nullptr), g.h.data(), s.x.data(), norms_.input_layernorm.data(),
                     s.rstd1.data(), N, D, true);
  }
}

}  // namespace omni
