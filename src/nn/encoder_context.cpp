#include "nn/encoder_context.h"

#include "core/error.h"

namespace omni {

std::vector<int64_t> read_token_ids(const Tensor& ids, int64_t vocab, const char* what) {
  OMNI_CHECK(ids.defined() && ids.device().is_cpu(), what, ": input_ids must be a host tensor");
  OMNI_CHECK(ids.ndim() == 2 && ids.dim(0) > 0 && ids.dim(1) > 0, what, ": input_ids expected [B, L], found ",
             shape_str(ids.shape()));
  OMNI_CHECK(ids.dtype() == DType::I32 || ids.dtype() == DType::I64, what, ": input_ids expected I32 or I64, found ",
             dtype_name(ids.dtype()));
  std::vector<int64_t> out(static_cast<size_t>(ids.numel()));
  for (int64_t i = 0; i < ids.numel(); ++i) {
    const int64_t id = ids.dtype() == DType::I32 ? ids.data<int32_t>()[i] : ids.data<int64_t>()[i];
    OMNI_CHECK(id >= 0 && id < vocab, what, ": input_ids[", i / ids.dim(1), ", ", i % ids.dim(1), "] = ", id,
               " is outside the vocabulary of ", vocab);
    out[static_cast<size_t>(i)] = id;
  }
  return out;
}

EncoderLayerWeights load_layer_weights(CheckpointLinears& ck, const Block& def, const std::string& prefix) {
  EncoderLayerWeights w;
  for (const ParamDesc& d : def.params()) w.params[d.name] = ck.param_f32(prefix + d.name, d.shape);
  for (const LinearDesc& d : def.linears())
    w.linears[d.name] = ck.linear(prefix + d.name, d.in_features, d.out_features, d.has_bias);
  return w;
}

EncoderContext::EncoderContext(Backend& backend, int64_t B, int64_t L, AttentionMask mask)
    : backend_(backend), B_(B), L_(L) {
  Tensor slot = Tensor::empty({B * L}, DType::I32), pos = Tensor::empty({B * L}, DType::I32);
  for (int64_t r = 0; r < B * L; ++r) {
    slot.data<int32_t>()[r] = static_cast<int32_t>(r / L);
    pos.data<int32_t>()[r] = static_cast<int32_t>(r % L);
  }
  rows_.slot = backend_.upload(slot);
  rows_.position = backend_.upload(pos);
  rows_.mask = mask;
  rows_.whole_sequences = true;
  positions_ = rows_.position;
}

Tensor EncoderContext::buffer(std::map<std::string, Tensor, std::less<>>& m, std::string_view name,
                              const Shape& shape, DType dt) {
  auto it = m.find(name);
  if (it != m.end() && it->second.shape() == shape) return it->second;
  Tensor t = backend_.alloc(shape, dt);
  m[std::string(name)] = t;
  return t;
}

Tensor EncoderContext::act(std::string_view name, const Shape& shape) {
  return buffer(acts_, name, shape, backend_.activation_dtype());
}

Tensor EncoderContext::stat(std::string_view name, const Shape& shape) {
  return buffer(stats_, name, shape, DType::F32);
}

const Tensor& EncoderContext::param(std::string_view name) {
  OMNI_CHECK(w_ != nullptr, "text encoder context: no layer weights in use");
  auto it = w_->params.find(std::string(name));
  OMNI_CHECK(it != w_->params.end(), "text encoder layer: no parameter \"", name, "\"");
  return it->second;
}

void EncoderContext::linear(std::string_view name, Tensor& y, const Tensor& x) {
  OMNI_CHECK(w_ != nullptr, "text encoder context: no layer weights in use");
  auto it = w_->linears.find(std::string(name));
  OMNI_CHECK(it != w_->linears.end(), "text encoder layer: no Linear \"", name, "\"");
  backend_.linear(y, x, *it->second);
}

void EncoderContext::linear_backward(std::string_view, Tensor*, const Tensor&, const Tensor&, bool) {
  OMNI_FAIL("text encoder inference context: no backward");
}

const Tensor& EncoderContext::positions() { return positions_; }

void EncoderContext::attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, Tensor* lse) {
  OMNI_CHECK(lse == nullptr, "text encoder inference context: attention saves no lse");
  OMNI_CHECK(k.ndim() >= 2 && k.numel() == B_ * L_ * k.dim(-2) * k.dim(-1), "text encoder attention: k expected [",
             B_ * L_, ", Hkv, hd], found ", shape_str(k.shape()));
  const int64_t H = k.dim(-2), hd = k.dim(-1);
  backend_.attention(out, q, k.view({B_, L_, H, hd}), v.view({B_, L_, H, hd}), rows_);
}

void EncoderContext::attention_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                        const Tensor&, const Tensor&, const Tensor&) {
  OMNI_FAIL("text encoder inference context: no backward");
}

}  // namespace omni
