// The training ops of CpuBackend (backend.h, "Training"): shape and dtype checks, then the f32 kernels of
// linear_backward.h, rmsnorm_backward.h, rope_backward.h, attention_backward.h, silu_mul_backward.h and
// masked_mse_loss_backward.h. Every error names the op, the argument, and what was expected and found.
#include <cstring>

#include "backends/cpu/attention_backward.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/linear_backward.h"
#include "backends/cpu/masked_mse_loss_backward.h"
#include "backends/cpu/rmsnorm_backward.h"
#include "backends/cpu/rope_backward.h"
#include "backends/cpu/silu_mul_backward.h"

namespace omni {
namespace {

void require_f32(const Tensor& t, const char* op, const char* name) {
  OMNI_CHECK(t.defined(), op, ": ", name, " is undefined");
  OMNI_CHECK(t.device() == Device::CPU, op, ": ", name, " must be a CPU tensor");
  OMNI_CHECK(t.dtype() == DType::F32, op, ": ", name, " expected dtype F32, found ", dtype_name(t.dtype()), " ",
             shape_str(t.shape()));
}

void require_shape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  OMNI_CHECK(t.shape() == expected, op, ": ", name, " expected shape ", shape_str(expected), ", found ",
             shape_str(t.shape()));
}

// The last dim of x (which must have one and be non-empty) and the number of rows before it.
std::pair<int64_t, int64_t> rows_and_dim(const Tensor& x, const char* op, const char* name) {
  OMNI_CHECK(x.ndim() >= 1 && x.dim(-1) > 0, op, ": ", name, " expected a non-empty last dim, found ",
             shape_str(x.shape()));
  return {x.numel() / x.dim(-1), x.dim(-1)};
}

// [B, T, H, hd] with an even hd, as RoPE needs.
void require_rope_layout(const Tensor& x, const char* op, const char* name) {
  OMNI_CHECK(x.ndim() == 4, op, ": ", name, " expected 4 dims [B, T, H, hd], found ", shape_str(x.shape()));
  OMNI_CHECK(x.dim(3) % 2 == 0, op, ": ", name, " head dim expected even, found ", x.dim(3));
}

}  // namespace

void CpuBackend::copy_from_cpu(Tensor& dst, const Tensor& src) { copy(dst, src); }

void CpuBackend::linear_forward_train(Tensor& y, const Tensor& x, const Tensor& w) {
  const char* op = "linear_forward_train";
  require_f32(x, op, "x");
  require_f32(w, op, "w");
  require_f32(y, op, "y");
  OMNI_CHECK(w.ndim() == 2, op, ": w expected 2 dims [N, K], found ", shape_str(w.shape()));
  const int64_t N = w.dim(0), K = w.dim(1);
  OMNI_CHECK(x.ndim() >= 1 && x.dim(-1) == K, op, ": x expected last dim ", K, " (w is ", shape_str(w.shape()),
             "), found ", shape_str(x.shape()));
  const int64_t M = K > 0 ? x.numel() / K : 0;
  OMNI_CHECK(y.ndim() >= 1 && y.dim(-1) == N && y.numel() == M * N, op, ": y expected ", M, " rows of ", N,
             ", found ", shape_str(y.shape()));
  omni::linear_forward_train(y.data<float>(), x.data<float>(), w.data<float>(), M, K, N);
}

void CpuBackend::linear_backward(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                                 bool accumulate_dx, bool accumulate_dw) {
  const char* op = "linear_backward";
  require_f32(dy, op, "dy");
  require_f32(x, op, "x");
  require_f32(w, op, "w");
  OMNI_CHECK(w.ndim() == 2, op, ": w expected 2 dims [N, K], found ", shape_str(w.shape()));
  const int64_t N = w.dim(0), K = w.dim(1);
  OMNI_CHECK(x.ndim() >= 1 && x.dim(-1) == K, op, ": x expected last dim ", K, " (w is ", shape_str(w.shape()),
             "), found ", shape_str(x.shape()));
  const int64_t M = K > 0 ? x.numel() / K : 0;
  OMNI_CHECK(dy.ndim() >= 1 && dy.dim(-1) == N && dy.numel() == M * N, op, ": dy expected ", M, " rows of ", N,
             ", found ", shape_str(dy.shape()));
  if (dx) {
    require_f32(*dx, op, "dx");
    require_shape(*dx, x.shape(), op, "dx");
  }
  if (dw) {
    require_f32(*dw, op, "dw");
    require_shape(*dw, w.shape(), op, "dw");
  }
  omni::linear_backward(dx ? dx->data<float>() : nullptr, dw ? dw->data<float>() : nullptr, dy.data<float>(),
                        x.data<float>(), w.data<float>(), M, K, N, accumulate_dx, accumulate_dw);
}

void CpuBackend::rmsnorm_forward_train(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) {
  const char* op = "rmsnorm_forward_train";
  require_f32(x, op, "x");
  require_f32(y, op, "y");
  require_f32(rstd, op, "rstd");
  require_f32(weight, op, "weight");
  const auto [rows, D] = rows_and_dim(x, op, "x");
  require_shape(y, x.shape(), op, "y");
  require_shape(weight, {D}, op, "weight");
  OMNI_CHECK(rstd.numel() == rows, op, ": rstd expected ", rows, " entries (one per row of x ",
             shape_str(x.shape()), "), found ", shape_str(rstd.shape()));
  omni::rmsnorm_forward_train(y.data<float>(), rstd.data<float>(), x.data<float>(), weight.data<float>(), rows, D,
                              eps);
}

void CpuBackend::rmsnorm_backward(Tensor& dx, Tensor* dweight, const Tensor& dy, const Tensor& x,
                                  const Tensor& weight, const Tensor& rstd, bool accumulate_dx) {
  const char* op = "rmsnorm_backward";
  require_f32(dx, op, "dx");
  require_f32(dy, op, "dy");
  require_f32(x, op, "x");
  require_f32(weight, op, "weight");
  require_f32(rstd, op, "rstd");
  const auto [rows, D] = rows_and_dim(x, op, "x");
  require_shape(dy, x.shape(), op, "dy");
  require_shape(dx, x.shape(), op, "dx");
  require_shape(weight, {D}, op, "weight");
  OMNI_CHECK(rstd.numel() == rows, op, ": rstd expected ", rows, " entries (one per row of x ",
             shape_str(x.shape()), "), found ", shape_str(rstd.shape()));
  OMNI_CHECK(!(accumulate_dx && dx.raw() == dy.raw()), op, ": dx may not alias dy when accumulating");
  if (dweight) {
    require_f32(*dweight, op, "dweight");
    require_shape(*dweight, {D}, op, "dweight");
  }
  omni::rmsnorm_backward(dx.data<float>(), dweight ? dweight->data<float>() : nullptr, dy.data<float>(),
                         x.data<float>(), weight.data<float>(), rstd.data<float>(), rows, D, accumulate_dx);
}

// The cos/sin table costs T·hd/2 sin/cos, negligible beside the attention it feeds, so it is not cached.
void CpuBackend::rope_forward_train(Tensor& x, float theta) {
  const char* op = "rope_forward_train";
  require_f32(x, op, "x");
  require_rope_layout(x, op, "x");
  const RopeTable table = make_rope_table(x.dim(1), x.dim(3), theta);
  omni::rope_forward_train(x.data<float>(), table, x.dim(0), x.dim(1), x.dim(2), x.dim(3));
}

void CpuBackend::rope_backward(Tensor& dx, float theta) {
  const char* op = "rope_backward";
  require_f32(dx, op, "dx");
  require_rope_layout(dx, op, "dx");
  const RopeTable table = make_rope_table(dx.dim(1), dx.dim(3), theta);
  omni::rope_backward(dx.data<float>(), table, dx.dim(0), dx.dim(1), dx.dim(2), dx.dim(3));
}

namespace {

struct AttentionDims {
  int64_t B, T, Hq, Hkv, hd;
};

// q [B, T, Hq, hd], k and v [B, T, Hkv, hd] with Hq a multiple of Hkv.
AttentionDims attention_dims(const Tensor& q, const Tensor& k, const Tensor& v, const char* op) {
  require_f32(q, op, "q");
  require_f32(k, op, "k");
  require_f32(v, op, "v");
  OMNI_CHECK(q.ndim() == 4, op, ": q expected 4 dims [B, T, Hq, hd], found ", shape_str(q.shape()));
  const AttentionDims d{q.dim(0), q.dim(1), q.dim(2), k.ndim() == 4 ? k.dim(2) : 0, q.dim(3)};
  OMNI_CHECK(k.ndim() == 4 && k.dim(0) == d.B && k.dim(1) == d.T && k.dim(3) == d.hd, op, ": k expected [", d.B,
             ", ", d.T, ", Hkv, ", d.hd, "], found ", shape_str(k.shape()));
  require_shape(v, k.shape(), op, "v");
  OMNI_CHECK(d.Hkv > 0 && d.Hq % d.Hkv == 0, op, ": query heads (", d.Hq, ") must be a multiple of kv heads (",
             d.Hkv, ")");
  return d;
}

}  // namespace

void CpuBackend::attention_forward_train(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k,
                                         const Tensor& v) {
  const char* op = "attention_forward_train";
  const AttentionDims d = attention_dims(q, k, v, op);
  require_f32(out, op, "out");
  require_f32(lse, op, "lse");
  require_shape(out, q.shape(), op, "out");
  require_shape(lse, {d.B, d.T, d.Hq}, op, "lse");
  omni::attention_forward_train(out.data<float>(), lse.data<float>(), q.data<float>(), k.data<float>(),
                                v.data<float>(), d.B, d.T, d.Hq, d.Hkv, d.hd);
}

void CpuBackend::attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                    const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse) {
  const char* op = "attention_backward";
  const AttentionDims d = attention_dims(q, k, v, op);
  require_f32(out, op, "out");
  require_f32(lse, op, "lse");
  require_f32(dout, op, "dout");
  require_f32(dq, op, "dq");
  require_f32(dk, op, "dk");
  require_f32(dv, op, "dv");
  require_shape(out, q.shape(), op, "out");
  require_shape(dout, q.shape(), op, "dout");
  require_shape(lse, {d.B, d.T, d.Hq}, op, "lse");
  require_shape(dq, q.shape(), op, "dq");
  require_shape(dk, k.shape(), op, "dk");
  require_shape(dv, v.shape(), op, "dv");
  omni::attention_backward(dq.data<float>(), dk.data<float>(), dv.data<float>(), dout.data<float>(),
                           q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(), lse.data<float>(),
                           d.B, d.T, d.Hq, d.Hkv, d.hd);
}

void CpuBackend::silu_mul_backward(Tensor& dgate, Tensor& dup, const Tensor& dy, const Tensor& gate,
                                   const Tensor& up) {
  const char* op = "silu_mul_backward";
  require_f32(dgate, op, "dgate");
  require_f32(dup, op, "dup");
  require_f32(dy, op, "dy");
  require_f32(gate, op, "gate");
  require_f32(up, op, "up");
  require_shape(up, gate.shape(), op, "up");
  require_shape(dy, gate.shape(), op, "dy");
  require_shape(dgate, gate.shape(), op, "dgate");
  require_shape(dup, gate.shape(), op, "dup");
  omni::silu_mul_backward(dgate.data<float>(), dup.data<float>(), dy.data<float>(), gate.data<float>(),
                          up.data<float>(), gate.numel());
}

double CpuBackend::masked_mse_loss(const Tensor& y, const Tensor& ref, const Tensor& mask, Tensor* dy,
                                   double dloss) {
  const char* op = "masked_mse_loss";
  require_f32(y, op, "y");
  require_f32(ref, op, "ref");
  require_shape(ref, y.shape(), op, "ref");
  const auto [rows, D] = rows_and_dim(y, op, "y");
  OMNI_CHECK(mask.defined() && mask.device() == Device::CPU, op, ": mask must be a defined CPU tensor");
  OMNI_CHECK(mask.dtype() == DType::U8, op, ": mask expected dtype U8, found ", dtype_name(mask.dtype()));
  OMNI_CHECK(mask.numel() == rows, op, ": mask expected ", rows, " entries (one per row of y ",
             shape_str(y.shape()), "), found ", shape_str(mask.shape()));
  if (dy) {
    require_f32(*dy, op, "dy");
    require_shape(*dy, y.shape(), op, "dy");
  }
  const double loss =
      masked_mse_loss_forward(y.data<float>(), ref.data<float>(), mask.data<uint8_t>(), rows, D);
  if (dy)
    omni::masked_mse_loss_backward(dy->data<float>(), y.data<float>(), ref.data<float>(), mask.data<uint8_t>(), rows,
                                   D, dloss);
  return loss;
}

}  // namespace omni
