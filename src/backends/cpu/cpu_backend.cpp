#include "backends/cpu/cpu_backend.h"

#include <cstring>

#include "backends/cpu/attention.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/embedding.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/rmsnorm.h"
#include "backends/cpu/rope.h"
#include "backends/cpu/softmax.h"
#include "core/half.h"

namespace omni {
namespace {

void require_cpu(const Tensor& t, const char* op, const char* name) {
  OMNI_CHECK(t.defined(), op, ": ", name, " is undefined");
  OMNI_CHECK(t.device() == Device::CPU, op, ": ", name, " must be a CPU tensor");
}

void require_f32(const Tensor& t, const char* op, const char* name) {
  require_cpu(t, op, name);
  OMNI_CHECK(t.dtype() == DType::F32, op, ": ", name, " expected dtype F32, found ", dtype_name(t.dtype()), " ",
             shape_str(t.shape()));
}

void require_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* na, const char* nb) {
  OMNI_CHECK(a.shape() == b.shape(), op, ": ", na, " and ", nb, " must have the same shape, found ",
             shape_str(a.shape()), " and ", shape_str(b.shape()));
}

std::vector<float> bias_to_f32(const Tensor& bias, int64_t N) {
  if (!bias.defined()) return {};
  require_cpu(bias, "prepare_linear", "bias");
  OMNI_CHECK(bias.numel() == N && bias.ndim() == 1, "prepare_linear: bias expected shape [", N, "], found ",
             shape_str(bias.shape()));
  OMNI_CHECK(bias.dtype() == DType::F32 || bias.dtype() == DType::BF16 || bias.dtype() == DType::F16,
             "prepare_linear: bias expected F32, BF16 or F16, found ", dtype_name(bias.dtype()));
  const Tensor f = bias.to(DType::F32);
  return std::vector<float>(f.data<float>(), f.data<float>() + N);
}

}  // namespace

Tensor CpuBackend::alloc(const Shape& shape, DType dtype) { return Tensor::empty(shape, dtype); }

std::shared_ptr<const PreparedLinear> CpuBackend::prepare_linear(const LinearWeight& w) {
  auto p = std::make_shared<CpuPreparedLinear>();
  if (w.is_quantized) {
    p->w4 = pack_w4a16_cpu(w.quantized);
    p->is_quantized = true;
  } else {
    require_cpu(w.dense, "prepare_linear", "dense weight");
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
  p->bias = bias_to_f32(w.bias, p->out_features);
  p->has_bias = !p->bias.empty();
  return p;
}

void CpuBackend::linear_forward(Tensor& y, const Tensor& x, const PreparedLinear& w) {
  const auto* p = dynamic_cast<const CpuPreparedLinear*>(&w);
  OMNI_CHECK(p != nullptr, "linear_forward: weight was not prepared by the CPU backend");
  require_f32(x, "linear_forward", "x");
  require_f32(y, "linear_forward", "y");
  const int64_t K = p->in_features, N = p->out_features;
  OMNI_CHECK(x.ndim() >= 1 && x.dim(-1) == K, "linear_forward: x expected last dim ", K, " (in_features), found ",
             shape_str(x.shape()));
  const int64_t M = x.numel() / K;
  OMNI_CHECK(y.ndim() >= 1 && y.dim(-1) == N && y.numel() == M * N, "linear_forward: y expected ", M,
             " rows of ", N, " (out_features), found ", shape_str(y.shape()));
  const float* bias = p->has_bias ? p->bias.data() : nullptr;
  if (p->is_quantized) {
    w4a16_matmul(y.data<float>(), x.data<float>(), p->w4, bias, M);
  } else if (p->dense.dtype() == DType::BF16) {
    matmul_bf16_weights(y.data<float>(), x.data<float>(), p->dense.data<uint16_t>(), bias, M, K, N);
  } else {
    matmul_f32_weights(y.data<float>(), x.data<float>(), p->dense.data<float>(), bias, M, K, N);
  }
}

void CpuBackend::embedding_forward(Tensor& y, const Tensor& ids, const Tensor& table) {
  require_cpu(ids, "embedding_forward", "ids");
  require_cpu(table, "embedding_forward", "table");
  require_f32(y, "embedding_forward", "y");
  OMNI_CHECK(ids.dtype() == DType::I32, "embedding_forward: ids expected I32, found ", dtype_name(ids.dtype()));
  OMNI_CHECK(table.ndim() == 2, "embedding_forward: table expected [vocab, dim], found ", shape_str(table.shape()));
  const int64_t T = ids.numel(), V = table.dim(0), D = table.dim(1);
  OMNI_CHECK(y.ndim() >= 1 && y.dim(-1) == D && y.numel() == T * D, "embedding_forward: y expected [", T, ", ", D,
             "], found ", shape_str(y.shape()));
  omni::embedding_forward(y.data<float>(), ids.data<int32_t>(), T, table.raw(), table.dtype(), V, D);
}

void CpuBackend::rmsnorm_forward(Tensor& y, const Tensor& x, const Tensor& weight, float eps) {
  require_f32(x, "rmsnorm_forward", "x");
  require_f32(y, "rmsnorm_forward", "y");
  require_same_shape(x, y, "rmsnorm_forward", "x", "y");
  require_cpu(weight, "rmsnorm_forward", "weight");
  const int64_t D = x.dim(-1);
  OMNI_CHECK(weight.ndim() == 1 && weight.dim(0) == D, "rmsnorm_forward: weight expected [", D, "], found ",
             shape_str(weight.shape()));
  OMNI_CHECK(weight.dtype() == DType::F32 || weight.dtype() == DType::BF16,
             "rmsnorm_forward: weight expected F32 or BF16, found ", dtype_name(weight.dtype()));
  const float* wf = weight.dtype() == DType::F32 ? weight.data<float>() : nullptr;
  const uint16_t* wb = weight.dtype() == DType::BF16 ? weight.data<uint16_t>() : nullptr;
  omni::rmsnorm_forward(y.data<float>(), x.data<float>(), wf, wb, x.numel() / std::max<int64_t>(1, D), D, eps);
}

void CpuBackend::rope_forward(Tensor& x, const Tensor& positions, float theta) {
  require_f32(x, "rope_forward", "x");
  require_cpu(positions, "rope_forward", "positions");
  OMNI_CHECK(positions.dtype() == DType::I32, "rope_forward: positions expected I32, found ",
             dtype_name(positions.dtype()));
  OMNI_CHECK(x.ndim() >= 3, "rope_forward: x expected [T, H, hd] (or [1, T, H, hd]), found ", shape_str(x.shape()));
  const int64_t hd = x.dim(-1), H = x.dim(-2);
  OMNI_CHECK(hd % 2 == 0, "rope_forward: head dim must be even, found ", hd);
  const int64_t T = x.numel() / std::max<int64_t>(1, H * hd);
  OMNI_CHECK(positions.numel() == T, "rope_forward: positions expected ", T, " entries for x ",
             shape_str(x.shape()), ", found ", shape_str(positions.shape()));
  omni::rope_forward(x.data<float>(), positions.data<int32_t>(), T, H, hd, theta);
}

void CpuBackend::attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                   int64_t start_pos) {
  require_f32(q, "attention_forward", "q");
  require_f32(k, "attention_forward", "k");
  require_f32(v, "attention_forward", "v");
  require_f32(out, "attention_forward", "out");
  OMNI_CHECK(q.ndim() == 4 && k.ndim() == 4, "attention_forward: q and k expected 4 dims [B, T, H, hd], found ",
             shape_str(q.shape()), " and ", shape_str(k.shape()));
  require_same_shape(k, v, "attention_forward", "k", "v");
  require_same_shape(q, out, "attention_forward", "q", "out");
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), hd = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2);
  OMNI_CHECK(k.dim(0) == B && k.dim(3) == hd, "attention_forward: k expected [", B, ", S, Hkv, ", hd, "], found ",
             shape_str(k.shape()));
  OMNI_CHECK(Hkv > 0 && Hq % Hkv == 0, "attention_forward: query heads (", Hq, ") must be a multiple of kv heads (",
             Hkv, ")");
  OMNI_CHECK(start_pos >= 0 && S >= start_pos + T, "attention_forward: the cache holds ", S, " positions, need ",
             start_pos + T, " (start_pos ", start_pos, " + T ", T, ")");
  omni::attention_forward(out.data<float>(), q.data<float>(), k.data<float>(), v.data<float>(), B, T, S, Hq, Hkv,
                          hd, start_pos);
}

void CpuBackend::silu_mul_forward(Tensor& y, const Tensor& gate, const Tensor& up) {
  require_f32(gate, "silu_mul_forward", "gate");
  require_f32(up, "silu_mul_forward", "up");
  require_f32(y, "silu_mul_forward", "y");
  require_same_shape(gate, up, "silu_mul_forward", "gate", "up");
  require_same_shape(gate, y, "silu_mul_forward", "gate", "y");
  omni::silu_mul_forward(y.data<float>(), gate.data<float>(), up.data<float>(), y.numel());
}

void CpuBackend::add_forward(Tensor& y, const Tensor& a, const Tensor& b) {
  require_f32(a, "add_forward", "a");
  require_f32(b, "add_forward", "b");
  require_f32(y, "add_forward", "y");
  require_same_shape(a, b, "add_forward", "a", "b");
  require_same_shape(a, y, "add_forward", "a", "y");
  omni::add_forward(y.data<float>(), a.data<float>(), b.data<float>(), y.numel());
}

void CpuBackend::copy(Tensor& dst, const Tensor& src) {
  require_cpu(dst, "copy", "dst");
  require_cpu(src, "copy", "src");
  OMNI_CHECK(dst.dtype() == src.dtype() && dst.numel() == src.numel(), "copy: dst ", dtype_name(dst.dtype()), " ",
             shape_str(dst.shape()), " and src ", dtype_name(src.dtype()), " ", shape_str(src.shape()),
             " must have the same dtype and element count");
  std::memmove(dst.raw(), src.raw(), src.nbytes());
}

void CpuBackend::softmax_forward(Tensor& x) {
  require_f32(x, "softmax_forward", "x");
  OMNI_CHECK(x.ndim() >= 1 && x.dim(-1) > 0, "softmax_forward: x needs a non-empty last dim, found ",
             shape_str(x.shape()));
  omni::softmax_forward(x.data<float>(), x.numel() / x.dim(-1), x.dim(-1));
}

Tensor CpuBackend::to_cpu(const Tensor& x) {
  require_cpu(x, "to_cpu", "x");
  return x.to(DType::F32);
}

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace omni
