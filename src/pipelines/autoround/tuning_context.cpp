#include "pipelines/autoround/tuning_context.h"

#include <algorithm>

#include "core/error.h"

namespace omni {
namespace {

// A checkpoint tensor as F32 on the host, dtype and shape checked.
Tensor to_f32(const Tensor& t, const std::string& name, const Shape& shape) {
  OMNI_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16 || t.dtype() == DType::F16, "block tensor \"",
             name, "\" has dtype ", dtype_name(t.dtype()), ", expected F32, BF16 or F16");
  OMNI_CHECK(t.shape() == shape, "block tensor \"", name, "\" has shape ", shape_str(t.shape()), ", expected ",
             shape_str(shape));
  return t.to(DType::F32);  // a copy: the context owns its weights
}

// [B, T, rest...] -> [B·T, rest...]
Shape rows_shape(const Shape& s) {
  Shape r(s.begin() + 1, s.end());
  r[0] *= s[0];
  return r;
}

}  // namespace

TuningContext::TuningContext(const Block& block, const std::string& prefix, const TensorSource& get,
                             const std::function<LinearQuantSpec(const LinearDesc&)>& spec_of, Backend& backend)
    : block_(block), be_(backend) {
  for (const ParamDesc& p : block.params()) {
    const std::string name = prefix + "." + p.name;
    params_[p.name] = be_.upload(to_f32(get(name), name, p.shape));
  }
  for (const LinearDesc& d : block.linears()) {
    TunableLinear L;
    L.name = d.name;
    L.out_features = d.out_features;
    L.in_features = d.in_features;
    L.spec = spec_of(d);
    const std::string w = prefix + "." + d.name + ".weight";
    L.weight = be_.upload(to_f32(get(w), w, {d.out_features, d.in_features}));
    if (d.has_bias) {
      const std::string b = prefix + "." + d.name + ".bias";
      L.bias = be_.upload(to_f32(get(b), b, {d.out_features}));
    }
    L.weight_used = L.weight;
    if (L.spec.quantize) {
      L.spec.scheme.validate();
      L.groups = L.spec.scheme.num_groups_for(L.in_features);
      const Shape nk = {L.out_features, L.in_features}, ng = {L.out_features, L.groups};
      L.v = filled(nk, 0.f);
      L.alpha = filled(ng, 1.f);
      L.beta = filled(ng, 1.f);
      L.grad_v = filled(nk, 0.f);
      L.grad_alpha = filled(ng, 0.f);
      L.grad_beta = filled(ng, 0.f);
      L.w_hat = be_.alloc(nk, DType::F32);
    }
    linears_.push_back(std::move(L));
  }
  forward_w_.resize(linears_.size());
}

Tensor TuningContext::filled(const Shape& shape, float value) {
  Tensor t = be_.alloc(shape, DType::F32);
  be_.fill(t, value);
  return t;
}

size_t TuningContext::index_of(std::string_view name) const {
  for (size_t i = 0; i < linears_.size(); ++i)
    if (linears_[i].name == name) return i;
  OMNI_FAIL("TuningContext: the block has no Linear named \"", name, "\"");
}

TunableLinear& TuningContext::linear(std::string_view name) { return linears_[index_of(name)]; }

Tensor TuningContext::act(std::string_view name, const Shape& shape) {
  const int64_t n = shape_numel(shape);
  auto it = buffers_.find(name);
  if (it == buffers_.end()) it = buffers_.emplace(std::string(name), Tensor()).first;
  Tensor& storage = it->second;
  if (!storage.defined() || storage.numel() < n) storage = be_.alloc({n}, DType::F32);
  return storage.slice_rows(0, n).view(shape);
}

const Tensor& TuningContext::param(std::string_view name) {
  const auto it = params_.find(name);
  OMNI_CHECK(it != params_.end(), "TuningContext: the block has no parameter \"", name, "\"");
  return it->second;
}

void TuningContext::refresh_weights(WeightMode mode) {
  mode_ = mode;
  for (auto& L : linears_) {
    if (mode == WeightMode::Original || !L.spec.quantize) {
      L.weight_used = L.weight;
      continue;
    }
    be_.clamp(L.alpha, 0.f, 1.f);
    be_.clamp(L.beta, 0.f, 1.f);
    be_.fake_quant(L.w_hat, L.weight, L.v, L.alpha, L.beta, L.spec.scheme);
    L.weight_used = L.w_hat;
  }
  saved_ = false;  // saved activations belong to the old weights
}

void TuningContext::use_weights(const std::vector<std::pair<std::string, Tensor>>& weights) {
  refresh_weights(WeightMode::Original);
  for (const auto& [name, w] : weights) {
    TunableLinear& L = linear(name);
    OMNI_CHECK(L.spec.quantize, "TuningContext::use_weights: Linear \"", name, "\" is not quantized");
    be_.copy_from_cpu(L.w_hat, w.view(L.w_hat.shape()));
    L.weight_used = L.w_hat;
  }
}

void TuningContext::zero_grads() {
  for (auto& L : linears_) {
    if (!L.spec.quantize) continue;
    be_.fill(L.grad_v, 0.f);
    be_.fill(L.grad_alpha, 0.f);
    be_.fill(L.grad_beta, 0.f);
  }
}

void TuningContext::set_batch(int64_t B, int64_t T) {
  if (B == B_ && T == T_ && positions_.defined()) return;
  if (B != B_) attention_rows_.clear();
  B_ = B;
  T_ = T;
  std::vector<int32_t> pos(static_cast<size_t>(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) pos[static_cast<size_t>(b * T + t)] = static_cast<int32_t>(t);
  positions_ = be_.upload(Tensor::from_i32(pos, {B * T}));
}

const AttentionRows& TuningContext::attention_rows(int64_t L) {
  auto it = attention_rows_.find(L);
  if (it != attention_rows_.end()) return it->second;
  std::vector<int32_t> slot(static_cast<size_t>(B_ * L)), pos(static_cast<size_t>(B_ * L));
  for (int64_t b = 0; b < B_; ++b)
    for (int64_t t = 0; t < L; ++t) {
      slot[static_cast<size_t>(b * L + t)] = static_cast<int32_t>(b);
      pos[static_cast<size_t>(b * L + t)] = static_cast<int32_t>(t);
    }
  AttentionRows rows;
  rows.slot = be_.upload(Tensor::from_i32(slot, {B_ * L}));
  rows.position = be_.upload(Tensor::from_i32(pos, {B_ * L}));
  rows.mask = block_.attention_mask();
  rows.whole_sequences = true;
  return attention_rows_.emplace(L, std::move(rows)).first->second;
}

NamedTensors TuningContext::forward(const NamedTensors& in, bool save_activations) {
  const std::vector<std::string> names = block_.io_names();
  const Tensor& first = in.at(names.at(0));
  OMNI_CHECK(first.dtype() == DType::F32 && first.ndim() == 3, "TuningContext::forward: \"", names[0],
             "\" must be F32 [B, T, D], got ", dtype_name(first.dtype()), " ", shape_str(first.shape()));
  set_batch(first.dim(0), first.dim(1));
  saved_ = false;
  linear_inputs_.clear();
  // The weights as they are now; backward() uses the same tensors.
  for (size_t i = 0; i < linears_.size(); ++i) forward_w_[i] = linears_[i].weight_used;
  NamedTensors rows_in, rows_out;
  io_shapes_.clear();
  for (const std::string& n : names) {
    const Tensor& x = in.at(n);
    OMNI_CHECK(x.dtype() == DType::F32 && x.ndim() == 3 && x.dim(0) == B_, "TuningContext::forward: \"", n,
               "\" must be F32 [", B_, ", T, D], got ", dtype_name(x.dtype()), " ", shape_str(x.shape()));
    rows_in.set(n, on_backend(x, "forward").view(rows_shape(x.shape())));
    rows_out.set(n, be_.alloc(rows_shape(x.shape()), DType::F32));
    io_shapes_[n] = x.shape();
  }
  conditioning_ = NamedTensors();
  for (const std::string& n : block_.conditioning_names()) {
    OMNI_CHECK(in.contains(n), "TuningContext::forward: the block's conditioning \"", n, "\" is missing");
    const Tensor& c = in.at(n);
    OMNI_CHECK(c.dtype() == DType::F32 && c.ndim() >= 2 && c.dim(0) == B_, "TuningContext::forward: conditioning \"",
               n, "\" must be F32 [", B_, ", ...], got ", dtype_name(c.dtype()), " ", shape_str(c.shape()));
    Tensor t = on_backend(c, "forward");
    if (t.ndim() >= 3) t = t.view(rows_shape(t.shape()));
    rows_in.set(n, t);
    conditioning_.set(n, t);
  }
  block_.forward(*this, rows_in, rows_out);
  saved_ = save_activations;
  NamedTensors out;
  for (const std::string& n : names) out.set(n, rows_out.at(n).view(in.at(n).shape()));
  return out;
}

Tensor TuningContext::on_backend(const Tensor& t, const char* op) {
  if (t.device() == be_.device()) return t;
  OMNI_CHECK(t.device().is_cpu(), "TuningContext::", op, ": a tensor on ", device_name(t.device()),
             " for a context on ", device_name(be_.device()));
  return be_.upload(t);
}

void TuningContext::linear(std::string_view name, Tensor& y, const Tensor& x) {
  const size_t i = index_of(name);
  linear_inputs_[std::string(name)] = x;
  const Tensor& bias = linears_[i].bias;
  be_.linear_dense(y, x, forward_w_[i], bias.defined() ? &bias : nullptr);
}

void TuningContext::linear_backward(std::string_view name, Tensor* dx, const Tensor& dy, const Tensor& x,
                                    bool accumulate_dx) {
  const size_t i = index_of(name);
  TunableLinear& L = linears_[i];
  const bool want_params = L.spec.quantize && mode_ == WeightMode::FakeQuant;
  Tensor gw;
  if (want_params) {
    const int64_t n = L.out_features * L.in_features;
    if (!scratch_grad_w_.defined() || scratch_grad_w_.numel() < n) scratch_grad_w_ = be_.alloc({n}, DType::F32);
    gw = scratch_grad_w_.slice_rows(0, n).view({L.out_features, L.in_features});
  }
  be_.linear_backward(dx, want_params ? &gw : nullptr, dy, x, forward_w_[i], accumulate_dx, false);
  if (!want_params) return;
  be_.fake_quant_backward(L.grad_v, L.grad_alpha, L.grad_beta, gw, L.weight, L.v, L.alpha, L.beta, L.spec.scheme);
}

// The sequence length of attention is the block's (T for a decoder, FLUX's joint L = Nt + Ni): the rows of k over
// the B samples.
void TuningContext::attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, Tensor* lse) {
  const int64_t L = k.numel() / (B_ * k.dim(-2) * k.dim(-1));
  const Shape kv = {B_, L, k.dim(-2), k.dim(-1)};
  be_.attention(out, q, k.view(kv), v.view(kv), attention_rows(L), lse);
}

void TuningContext::attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                       const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse) {
  const int64_t L = k.numel() / (B_ * k.dim(-2) * k.dim(-1));
  const Shape kv = {B_, L, k.dim(-2), k.dim(-1)};
  Tensor dk4 = dk.view(kv), dv4 = dv.view(kv);
  be_.attention_backward(dq, dk4, dv4, dout, q, k.view(kv), v.view(kv), out, lse, attention_rows(L));
}

void TuningContext::backward(const NamedTensors& d_out, NamedTensors* d_in) {
  OMNI_CHECK(saved_, "TuningContext::backward needs a forward with save_activations = true first (and no "
             "refresh_weights() in between)");
  const std::vector<std::string> names = block_.io_names();
  NamedTensors rows_dy, rows_dx;
  for (const std::string& n : names) {
    const Tensor& dy = d_out.at(n);
    const Shape& want = io_shapes_.at(n);
    OMNI_CHECK(dy.dtype() == DType::F32 && dy.shape() == want, "TuningContext::backward: \"", n,
               "\" must be F32 ", shape_str(want), " (the forward's), got ", dtype_name(dy.dtype()), " ",
               shape_str(dy.shape()));
    rows_dy.set(n, on_backend(dy, "backward").view(rows_shape(dy.shape())));
    if (d_in) rows_dx.set(n, be_.alloc(rows_shape(dy.shape()), DType::F32));
  }
  for (const auto& [n, t] : conditioning_.items()) rows_dy.set(n, t);
  block_.backward(*this, rows_dy, d_in ? &rows_dx : nullptr);
  if (!d_in) return;
  for (const std::string& n : names) d_in->set(n, rows_dx.at(n).view(d_out.at(n).shape()));
}

Tensor TuningContext::linear_input(std::string_view name) const {
  OMNI_CHECK(saved_, "TuningContext::linear_input needs a forward with save_activations = true first");
  const auto it = linear_inputs_.find(name);
  OMNI_CHECK(it != linear_inputs_.end(), "TuningContext::linear_input: no Linear \"", name, "\" ran");
  const Tensor& x = it->second;
  const int64_t K = x.dim(-1);
  return const_cast<Backend&>(be_).download(x.view({x.numel() / K, K}));
}

}  // namespace omni
