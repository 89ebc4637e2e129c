#include "backends/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/attention.h"
#include "backends/cpu/attention_bias.h"
#include "backends/cpu/attention_backward.h"
#include "backends/cpu/conv2d.h"
#include "backends/cpu/dequantize_gptq.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/embedding.h"
#include "backends/cpu/group_norm.h"
#include "backends/cpu/layernorm.h"
#include "backends/cpu/layout.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/rmsnorm.h"
#include "backends/cpu/rmsnorm_backward.h"
#include "backends/cpu/rope.h"
#include "backends/cpu/softmax.h"

namespace omni {
namespace {

// An activation read as f32: the tensor itself when it is F32, else an f32 copy.
class F32In {
 public:
  explicit F32In(const Tensor& x) : t_(x.dtype() == DType::F32 ? x : x.to(DType::F32)) {}
  const float* p() const { return t_.data<float>(); }

 private:
  Tensor t_;
};

// An activation written as f32: straight into dst when it is F32, else into a scratch rounded into dst by
// commit(). `read` starts the scratch from dst's values (in-place ops).
class F32Out {
 public:
  F32Out(Tensor& dst, bool read) : dst_(dst) {
    if (dst.dtype() != DType::F32) scratch_ = read ? dst.to(DType::F32) : Tensor::empty(dst.shape(), DType::F32);
  }
  float* p() { return scratch_.defined() ? scratch_.data<float>() : dst_.data<float>(); }
  void commit() {
    if (!scratch_.defined()) return;
    const Tensor r = scratch_.to(dst_.dtype());
    std::memcpy(dst_.raw(), r.raw(), r.nbytes());
  }

 private:
  Tensor& dst_;
  Tensor scratch_;
};

bool is_activation_dtype(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

std::vector<float> bias_to_f32(const Tensor& bias, int64_t N) {
  if (!bias.defined()) return {};
  OMNI_CHECK(bias.device().is_cpu(), "prepare_linear: bias must be a CPU tensor");
  OMNI_CHECK(bias.numel() == N && bias.ndim() == 1, "prepare_linear: bias expected shape [", N, "], found ",
             shape_str(bias.shape()));
  OMNI_CHECK(bias.dtype() == DType::F32 || bias.dtype() == DType::BF16 || bias.dtype() == DType::F16,
             "prepare_linear: bias expected F32, BF16 or F16, found ", dtype_name(bias.dtype()));
  const Tensor f = bias.to(DType::F32);
  return std::vector<float>(f.data<float>(), f.data<float>() + N);
}

}  // namespace

std::string CpuBackend::name() const {
  return activation_dtype() == DType::F32 ? "cpu" : "cpu-" + std::string(dtype_name(activation_dtype()));
}

bool CpuBackend::supports(Op op, DType dtype) const {
  switch (op) {
    case Op::Linear:
    case Op::Embedding:
    case Op::RmsNorm:
    case Op::Rope:
    case Op::Attention:
    case Op::SiluMul:
    case Op::Add:
    case Op::Softmax:
    case Op::LayerNorm:
    case Op::GeluTanh:
    case Op::Modulate:
    case Op::Silu:
    case Op::GatedAdd:
    case Op::RopeInterleaved:
    case Op::Conv2d:
    case Op::GroupNorm:
    case Op::QuickGelu:
    case Op::Mul:
    case Op::AttentionWithBias: return is_activation_dtype(dtype);
    case Op::UpsampleNearest2x:
    case Op::Transpose: return true;  // bits copied
    case Op::Copy:
    case Op::CopyRows: return true;
    case Op::Fill: return dtype == DType::F32;
    default: return dtype == DType::F32;  // training ops
  }
}

Tensor CpuBackend::alloc(const Shape& shape, DType dtype) { return Tensor::empty(shape, dtype); }

Tensor CpuBackend::download_impl(const Tensor& x) { return x.dtype() == DType::F32 ? x : x.to(DType::F32); }

std::shared_ptr<const PreparedLinear> CpuBackend::prepare_linear(const LinearWeight& w) {
  auto p = std::make_shared<CpuPreparedLinear>();
  if (w.is_quantized && w.quantized.bits == 4) {
    p->w4 = pack_w4a16_cpu(w.quantized);
    p->is_quantized = true;
  } else if (w.is_quantized) {
    // 2, 3 and 8 bits: no int kernel for them on the CPU yet, so the weight is held dense (exact in F32; BF16,
    // half of F32's memory, where activations are 16-bit anyway).
    validate_grouped_int_weight(w.quantized, "prepare_linear");
    p->dense = dequantize_gptq_cpu(w.quantized, activation_dtype() == DType::F32 ? DType::F32 : DType::BF16);
    p->dequantized_from = std::to_string(w.quantized.bits) + "-bit codes; the CPU int kernels take 4-bit";
  } else {
    OMNI_CHECK(w.dense.defined() && w.dense.device().is_cpu(), "prepare_linear: dense weight must be a CPU tensor");
    OMNI_CHECK(w.dense.ndim() == 2 && w.dense.dim(0) > 0 && w.dense.dim(1) > 0,
               "prepare_linear: dense weight expected 2 non-empty dims [N, K], found ", shape_str(w.dense.shape()));
    switch (w.dense.dtype()) {
      case DType::F32:
      case DType::BF16: p->dense = w.dense; break;  // borrowed, no copy
      case DType::F16: p->dense = w.dense.to(DType::F32); break;
      default:
        OMNI_FAIL("prepare_linear: dense weight expected F32, BF16 or F16, found ", dtype_name(w.dense.dtype()));
    }
  }
  p->in_features = w.in_features();
  p->out_features = w.out_features();
  p->weight_bytes = static_cast<int64_t>(
      p->is_quantized ? p->w4.codes.nbytes() + p->w4.scales.nbytes() + p->w4.zeros.nbytes() : p->dense.nbytes());
  p->bias = bias_to_f32(w.bias, p->out_features);
  p->has_bias = !p->bias.empty();
  return p;
}

void CpuBackend::linear_impl(Tensor& y, const Tensor& x, const PreparedLinear& w) {
  const auto* p = dynamic_cast<const CpuPreparedLinear*>(&w);
  OMNI_CHECK(p != nullptr, "linear: weight was not prepared by the CPU backend");
  const int64_t K = p->in_features, N = p->out_features, M = x.numel() / K;
  const float* bias = p->has_bias ? p->bias.data() : nullptr;
  const F32In xi(x);
  F32Out yo(y, false);
  if (p->is_quantized)
    w4a16_matmul(yo.p(), xi.p(), p->w4, bias, M);
  else if (p->dense.dtype() == DType::BF16)
    matmul_bf16_weights(yo.p(), xi.p(), p->dense.data<uint16_t>(), bias, M, K, N);
  else
    matmul_f32_weights(yo.p(), xi.p(), p->dense.data<float>(), bias, M, K, N);
  yo.commit();
}

void CpuBackend::embedding_impl(Tensor& y, const Tensor& ids, const Tensor& table) {
  F32Out yo(y, false);
  omni::embedding_forward(yo.p(), ids.data<int32_t>(), ids.numel(), table.raw(), table.dtype(), table.dim(0),
                          table.dim(1));
  yo.commit();
}

void CpuBackend::rms_norm_impl(Tensor& y, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) {
  const int64_t D = x.dim(-1), rows = x.numel() / D;
  if (rstd) {  // the training form (all F32, checked by backend.cpp): saves rstd, same y as the inference kernel
    rmsnorm_forward_train(y.data<float>(), rstd->data<float>(), x.data<float>(), weight.data<float>(), rows, D, eps);
    return;
  }
  const float* wf = weight.dtype() == DType::F32 ? weight.data<float>() : nullptr;
  const uint16_t* wb = weight.dtype() == DType::BF16 ? weight.data<uint16_t>() : nullptr;
  const F32In xi(x);
  F32Out yo(y, false);
  omni::rmsnorm_forward(yo.p(), xi.p(), wf, wb, rows, D, eps);
  yo.commit();
}

void CpuBackend::rope_impl(Tensor& x, const Tensor& positions, const RopeParams& params, bool inverse) {
  const int64_t hd = x.dim(-1), H = x.dim(-2), N = x.numel() / (H * hd);
  F32Out xo(x, true);
  rope_rows(xo.p(), positions.data<int32_t>(), N, H, hd, params.theta, inverse);
  xo.commit();
}

void CpuBackend::attention_impl(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                const AttentionRows& rows, Tensor* lse) {
  const int64_t hd = q.dim(-1), Hq = q.dim(-2), N = q.numel() / (Hq * hd);
  const int64_t S = k.dim(0), C = k.dim(1), Hkv = k.dim(2);
  const bool causal = rows.mask == AttentionMask::Causal;
  // Training batches: the tiled whole-sequence kernel (it always computes lse; scratch when not wanted). The full
  // mask takes it only when lse is saved, so inference with the full mask keeps the row kernel's numbers.
  if (rows.whole_sequences && q.dtype() == DType::F32 && (causal || lse)) {
    Tensor scratch;
    if (!lse) scratch = Tensor::empty({N, Hq}, DType::F32);
    float* l = lse ? lse->data<float>() : scratch.data<float>();
    attention_forward_train(out.data<float>(), l, q.data<float>(), k.data<float>(), v.data<float>(), S, C, Hq, Hkv,
                            hd, causal);
    return;
  }
  OMNI_CHECK(lse == nullptr, "attention: the CPU backend saves lse for F32 whole-sequence batches only");
  const F32In qi(q);
  F32Out oo(out, false);
  if (k.dtype() == DType::F32) {
    attention_forward_rows(oo.p(), qi.p(), k.data<float>(), v.data<float>(), N, Hq, Hkv, hd, S, C,
                           rows.slot.data<int32_t>(), rows.position.data<int32_t>(), causal);
  } else {
    // A 16-bit cache: convert only the positions the rows can read (causal rows see 0..max position), not the
    // whole capacity — a decode step would otherwise widen every layer's full cache each token.
    const int32_t* pos = rows.position.data<int32_t>();
    int64_t keys = causal ? 0 : C;
    for (int64_t n = 0; n < N && causal; ++n) keys = std::max<int64_t>(keys, std::min<int64_t>(C, int64_t{pos[n]} + 1));
    keys = std::max<int64_t>(keys, 1);
    const int64_t row = Hkv * hd;
    Tensor kf = Tensor::empty({S, keys, Hkv, hd}, DType::F32), vf = Tensor::empty({S, keys, Hkv, hd}, DType::F32);
    for (int64_t s = 0; s < S; ++s) {
      convert_to_f32(kf.data<float>() + s * keys * row, static_cast<const uint16_t*>(k.raw()) + s * C * row, k.dtype(),
                     keys * row);
      convert_to_f32(vf.data<float>() + s * keys * row, static_cast<const uint16_t*>(v.raw()) + s * C * row, v.dtype(),
                     keys * row);
    }
    // Positions past `keys` are out of range for the compact copy; attention_forward_rows checks them against it.
    attention_forward_rows(oo.p(), qi.p(), kf.data<float>(), vf.data<float>(), N, Hq, Hkv, hd, S, keys,
                           rows.slot.data<int32_t>(), pos, causal);
  }
  oo.commit();
}

void CpuBackend::silu_mul_impl(Tensor& y, const Tensor& gate, const Tensor& up) {
  const F32In g(gate), u(up);
  F32Out yo(y, false);
  omni::silu_mul_forward(yo.p(), g.p(), u.p(), y.numel());
  yo.commit();
}

void CpuBackend::add_impl(Tensor& y, const Tensor& a, const Tensor& b) {
  const F32In ai(a), bi(b);
  F32Out yo(y, false);
  omni::add_forward(yo.p(), ai.p(), bi.p(), y.numel());
  yo.commit();
}

void CpuBackend::layer_norm_impl(Tensor& y, const Tensor& x, float eps, const Tensor* weight, const Tensor* bias) {
  const int64_t D = x.dim(-1);
  LayerNormAffine a;
  if (weight) {
    if (weight->dtype() == DType::F32) a.weight_f32 = weight->data<float>(); else a.weight_bf16 = weight->data<uint16_t>();
    if (bias->dtype() == DType::F32) a.bias_f32 = bias->data<float>(); else a.bias_bf16 = bias->data<uint16_t>();
  }
  const F32In xi(x);
  F32Out yo(y, false);
  layernorm_forward(yo.p(), xi.p(), x.numel() / D, D, eps, a);
  yo.commit();
}

void CpuBackend::gelu_tanh_impl(Tensor& y, const Tensor& x) {
  const F32In xi(x);
  F32Out yo(y, false);
  gelu_tanh_forward(yo.p(), xi.p(), y.numel());
  yo.commit();
}

void CpuBackend::modulate_impl(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift) {
  const F32In xi(x), sc(scale), sh(shift);
  F32Out yo(y, false);
  modulate_forward(yo.p(), xi.p(), sc.p(), sh.p(), x.dim(0), x.dim(1), x.dim(2));
  yo.commit();
}

void CpuBackend::silu_impl(Tensor& y, const Tensor& x) {
  const F32In xi(x);
  F32Out yo(y, false);
  silu_forward(yo.p(), xi.p(), y.numel());
  yo.commit();
}

void CpuBackend::gated_add_impl(Tensor& y, const Tensor& x, const Tensor& gate, const Tensor& h) {
  const F32In xi(x), gi(gate), hi(h);
  F32Out yo(y, false);
  gated_add_forward(yo.p(), xi.p(), gi.p(), hi.p(), x.dim(0), x.dim(1), x.dim(2));
  yo.commit();
}

void CpuBackend::rope_interleaved_impl(Tensor& x, const Tensor& cos, const Tensor& sin) {
  F32Out xo(x, true);
  rope_interleaved_forward(xo.p(), cos.data<float>(), sin.data<float>(), x.dim(0), x.dim(1), x.dim(2));
  xo.commit();
}

void CpuBackend::conv2d_impl(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, int64_t padding) {
  const F32In xi(x);
  F32Out yo(y, false);
  conv2d_forward(yo.p(), xi.p(), w.data<float>(), bias ? bias->data<float>() : nullptr, x.dim(0), x.dim(1), x.dim(2),
                 x.dim(3), w.dim(0), w.dim(2), w.dim(3), padding);
  yo.commit();
}

void CpuBackend::group_norm_impl(Tensor& y, const Tensor& x, int64_t groups, float eps, const Tensor* weight,
                                 const Tensor* bias) {
  const int64_t B = x.dim(0), C = x.dim(1);
  const F32In xi(x);
  F32Out yo(y, false);
  group_norm_forward(yo.p(), xi.p(), B, C, x.numel() / (B * C), groups, eps, weight ? weight->data<float>() : nullptr,
                     bias ? bias->data<float>() : nullptr);
  yo.commit();
}

void CpuBackend::upsample_nearest2x_impl(Tensor& y, const Tensor& x) {
  const int64_t H = x.dim(-2), W = x.dim(-1);
  upsample_nearest2x_forward(y.raw(), x.raw(), dtype_size(x.dtype()), x.numel() / (H * W), H, W);
}

void CpuBackend::transpose_impl(Tensor& y, const Tensor& x) {
  const int64_t M = x.dim(-2), N = x.dim(-1);
  transpose_last2(y.raw(), x.raw(), dtype_size(x.dtype()), x.numel() / (M * N), M, N);
}

void CpuBackend::quick_gelu_impl(Tensor& y, const Tensor& x) {
  const F32In xi(x);
  F32Out yo(y, false);
  quick_gelu_forward(yo.p(), xi.p(), y.numel());
  yo.commit();
}

void CpuBackend::mul_impl(Tensor& y, const Tensor& a, const Tensor& b) {
  const F32In ai(a), bi(b);
  F32Out yo(y, false);
  mul_forward(yo.p(), ai.p(), bi.p(), y.numel());
  yo.commit();
}

void CpuBackend::attention_with_bias_impl(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                          const Tensor& bias, float scale) {
  const F32In qi(q), ki(k), vi(v);
  F32Out oo(out, false);
  attention_with_bias_forward(oo.p(), qi.p(), ki.p(), vi.p(), bias.data<float>(), q.dim(0), q.dim(1), k.dim(1),
                              q.dim(2), q.dim(3), bias.ndim() == 4, scale);
  oo.commit();
}

void CpuBackend::copy_impl(Tensor& dst, const Tensor& src) { std::memmove(dst.raw(), src.raw(), src.nbytes()); }

void CpuBackend::copy_rows_impl(Tensor& dst, const Tensor& src, const Tensor& index) {
  const int64_t W = src.dim(-1), n = src.numel() / W, R = dst.numel() / W;
  const size_t row_bytes = static_cast<size_t>(W) * dtype_size(src.dtype());
  const int32_t* idx = index.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    OMNI_CHECK(idx[i] >= 0 && idx[i] < R, "copy_rows: index[", i, "] = ", idx[i], " is outside the ", R,
               " rows of dst");
    std::memcpy(static_cast<char*>(dst.raw()) + static_cast<size_t>(idx[i]) * row_bytes,
                static_cast<const char*>(src.raw()) + static_cast<size_t>(i) * row_bytes, row_bytes);
  }
}

void CpuBackend::softmax_impl(Tensor& x) {
  F32Out xo(x, true);
  omni::softmax_forward(xo.p(), x.numel() / x.dim(-1), x.dim(-1));
  xo.commit();
}

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace omni
