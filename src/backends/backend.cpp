// The validating entry points of Backend: every check that does not depend on how an op is computed lives here,
// once, so a new backend implements only the arithmetic. Errors name the op, the argument, and what was
// expected and found.
#include "backends/backend.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <utility>

namespace omni {
namespace {

bool is_float(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

void require_dtype(const Tensor& t, DType want, const char* op, const char* name) {
  OMNI_CHECK(t.dtype() == want, op, ": ", name, " expected dtype ", dtype_name(want), ", found ",
             dtype_name(t.dtype()), " ", shape_str(t.shape()));
}

void require_shape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
  OMNI_CHECK(t.shape() == expected, op, ": ", name, " expected shape ", shape_str(expected), ", found ",
             shape_str(t.shape()));
}

void require_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* na, const char* nb) {
  OMNI_CHECK(a.shape() == b.shape(), op, ": ", na, " and ", nb, " must have the same shape, found ",
             shape_str(a.shape()), " and ", shape_str(b.shape()));
}

void require_same_dtype(const Tensor& a, const Tensor& b, const char* op, const char* na, const char* nb) {
  OMNI_CHECK(a.dtype() == b.dtype(), op, ": ", na, " and ", nb, " must have the same dtype, found ",
             dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
}

// The last dim of x (which must have one and be non-empty) and the number of rows before it.
std::pair<int64_t, int64_t> rows_and_dim(const Tensor& x, const char* op, const char* name) {
  OMNI_CHECK(x.ndim() >= 1 && x.dim(-1) > 0, op, ": ", name, " expected a non-empty last dim, found ",
             shape_str(x.shape()));
  return {x.numel() / x.dim(-1), x.dim(-1)};
}

// M for y[M, N] = x[M, K] · wᵀ, checking the last dims of x and y.
int64_t linear_rows(const Tensor& y, const Tensor& x, int64_t K, int64_t N, const char* op, const char* yname) {
  OMNI_CHECK(x.ndim() >= 1 && x.dim(-1) == K, op, ": x expected last dim ", K, " (in_features), found ",
             shape_str(x.shape()));
  const int64_t M = x.numel() / K;
  OMNI_CHECK(y.ndim() >= 1 && y.dim(-1) == N && y.numel() == M * N, op, ": ", yname, " expected ", M,
             " rows of ", N, " (out_features), found ", shape_str(y.shape()));
  return M;
}

struct AttentionDims {
  int64_t N, Hq, hd, S, C, Hkv;
};

AttentionDims attention_dims(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionRows& rows,
                             const char* op) {
  OMNI_CHECK(q.ndim() >= 3, op, ": q expected [N, Hq, hd] (any leading dims), found ", shape_str(q.shape()));
  OMNI_CHECK(k.ndim() == 4, op, ": k expected 4 dims [slots, capacity, Hkv, hd], found ", shape_str(k.shape()));
  require_same_shape(k, v, op, "k", "v");
  require_same_dtype(q, k, op, "q", "k");
  require_same_dtype(q, v, op, "q", "v");
  AttentionDims d{};
  d.hd = q.dim(-1);
  d.Hq = q.dim(-2);
  d.N = q.numel() / (d.Hq * d.hd);
  d.S = k.dim(0);
  d.C = k.dim(1);
  d.Hkv = k.dim(2);
  OMNI_CHECK(k.dim(3) == d.hd, op, ": k head dim ", k.dim(3), " differs from q's ", d.hd);
  OMNI_CHECK(d.Hkv > 0 && d.Hq % d.Hkv == 0, op, ": query heads (", d.Hq, ") must be a multiple of kv heads (",
             d.Hkv, ")");
  for (const Tensor* t : std::initializer_list<const Tensor*>{&rows.slot, &rows.position}) {
    const char* name = t == &rows.slot ? "rows.slot" : "rows.position";
    OMNI_CHECK(t->defined(), op, ": ", name, " is undefined");
    require_dtype(*t, DType::I32, op, name);
    OMNI_CHECK(t->numel() == d.N, op, ": ", name, " expected ", d.N, " entries (one per query row), found ",
               shape_str(t->shape()));
  }
  if (rows.whole_sequences)
    OMNI_CHECK(d.N == d.S * d.C, op, ": whole_sequences needs slots × capacity = ", d.S * d.C, " query rows, found ",
               d.N);
  return d;
}

}  // namespace

const char* op_name(Op op) {
  switch (op) {
    case Op::Linear: return "linear";
    case Op::LinearDense: return "linear_dense";
    case Op::LinearBackward: return "linear_backward";
    case Op::Embedding: return "embedding";
    case Op::RmsNorm: return "rms_norm";
    case Op::RmsNormBackward: return "rms_norm_backward";
    case Op::Rope: return "rope";
    case Op::RopeBackward: return "rope_backward";
    case Op::Attention: return "attention";
    case Op::AttentionBackward: return "attention_backward";
    case Op::SiluMul: return "silu_mul";
    case Op::SiluMulBackward: return "silu_mul_backward";
    case Op::Add: return "add";
    case Op::Copy: return "copy";
    case Op::CopyRows: return "copy_rows";
    case Op::Softmax: return "softmax";
    case Op::MaskedMseLoss: return "masked_mse_loss";
    case Op::FakeQuant: return "fake_quant";
    case Op::FakeQuantBackward: return "fake_quant_backward";
    case Op::Clamp: return "clamp";
    case Op::SignStep: return "sign_step";
    case Op::Fill: return "fill";
    case Op::LayerNorm: return "layer_norm";
    case Op::GeluTanh: return "gelu_tanh";
    case Op::Modulate: return "modulate";
    case Op::Silu: return "silu";
    case Op::GatedAdd: return "gated_add";
    case Op::RopeInterleaved: return "rope_interleaved";
    case Op::Conv2d: return "conv2d";
    case Op::GroupNorm: return "group_norm";
    case Op::UpsampleNearest2x: return "upsample_nearest2x";
    case Op::Transpose: return "transpose";
    case Op::QuickGelu: return "quick_gelu";
    case Op::Mul: return "mul";
    case Op::AttentionWithBias: return "attention_with_bias";
    case Op::LayerNormBackward: return "layer_norm_backward";
    case Op::GeluTanhBackward: return "gelu_tanh_backward";
    case Op::ModulateBackward: return "modulate_backward";
    case Op::GatedAddBackward: return "gated_add_backward";
    case Op::RopeInterleavedBackward: return "rope_interleaved_backward";
    case Op::AttentionFullBackward: return "attention_backward (full mask)";
  }
  return "?";
}

Backend::Backend(DType activation_dtype) : activation_dtype_(activation_dtype) {
  OMNI_CHECK(activation_dtype == DType::F32 || activation_dtype == DType::BF16 || activation_dtype == DType::F16,
             "activation dtype must be F32, BF16 or F16, found ", dtype_name(activation_dtype));
}

void Backend::require(Op op, DType dtype) const {
  OMNI_CHECK(supports(op, dtype), "backend ", name(), " does not support ", op_name(op), " with ", dtype_name(dtype),
             " tensors");
}

void Backend::on_device(const Tensor& t, const char* op, const char* name) const {
  OMNI_CHECK(t.defined(), op, ": ", name, " is undefined");
  OMNI_CHECK(t.device() == device(), op, ": ", name, " is on ", device_name(t.device()), ", expected ",
             device_name(device()));
}

void Backend::begin_capture() { OMNI_FAIL("begin_capture: backend ", name(), " does not record work"); }
std::unique_ptr<CapturedWork> Backend::end_capture() {
  OMNI_FAIL("end_capture: backend ", name(), " does not record work");
}
void Backend::replay(const CapturedWork&) { OMNI_FAIL("replay: backend ", name(), " does not record work"); }

Tensor Backend::upload(const Tensor& host) {
  OMNI_CHECK(host.defined() && host.device().is_cpu(), "upload: the source must be a defined CPU tensor");
  return upload_impl(host);
}

Tensor Backend::download(const Tensor& x) {
  on_device(x, "download", "x");
  return download_impl(x);
}

void Backend::copy_from_cpu(Tensor& dst, const Tensor& src) {
  on_device(dst, "copy_from_cpu", "dst");
  OMNI_CHECK(src.defined() && src.device().is_cpu(), "copy_from_cpu: src must be a defined CPU tensor");
  OMNI_CHECK(dst.dtype() == src.dtype() && dst.numel() == src.numel(), "copy_from_cpu: dst ",
             dtype_name(dst.dtype()), " ", shape_str(dst.shape()), " and src ", dtype_name(src.dtype()), " ",
             shape_str(src.shape()), " must have the same dtype and element count");
  copy_from_cpu_impl(dst, src);
}

void Backend::linear(Tensor& y, const Tensor& x, const PreparedLinear& w) {
  const char* op = "linear";
  on_device(x, op, "x");
  on_device(y, op, "y");
  require_same_dtype(x, y, op, "x", "y");
  require(Op::Linear, x.dtype());
  linear_rows(y, x, w.in_features, w.out_features, op, "y");
  linear_impl(y, x, w);
}

void Backend::linear_dense(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const char* op = "linear_dense";
  on_device(x, op, "x");
  on_device(y, op, "y");
  on_device(w, op, "w");
  require_dtype(x, DType::F32, op, "x");
  require_dtype(y, DType::F32, op, "y");
  require_dtype(w, DType::F32, op, "w");
  require(Op::LinearDense, DType::F32);
  OMNI_CHECK(w.ndim() == 2, op, ": w expected 2 dims [N, K], found ", shape_str(w.shape()));
  linear_rows(y, x, w.dim(1), w.dim(0), op, "y");
  if (bias) {
    on_device(*bias, op, "bias");
    require_dtype(*bias, DType::F32, op, "bias");
    require_shape(*bias, {w.dim(0)}, op, "bias");
  }
  linear_dense_impl(y, x, w, bias);
}

void Backend::embedding(Tensor& y, const Tensor& ids, const Tensor& table) {
  const char* op = "embedding";
  on_device(y, op, "y");
  on_device(ids, op, "ids");
  on_device(table, op, "table");
  require_dtype(ids, DType::I32, op, "ids");
  OMNI_CHECK(is_float(table.dtype()), op, ": table expected F32, BF16 or F16, found ", dtype_name(table.dtype()));
  OMNI_CHECK(table.ndim() == 2, op, ": table expected [vocab, dim], found ", shape_str(table.shape()));
  require(Op::Embedding, y.dtype());
  const int64_t T = ids.numel(), D = table.dim(1);
  OMNI_CHECK(y.ndim() >= 1 && y.dim(-1) == D && y.numel() == T * D, op, ": y expected [", T, ", ", D, "], found ",
             shape_str(y.shape()));
  embedding_impl(y, ids, table);
}

void Backend::rms_norm(Tensor& y, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) {
  const char* op = "rms_norm";
  on_device(x, op, "x");
  on_device(y, op, "y");
  on_device(weight, op, "weight");
  require_same_shape(x, y, op, "x", "y");
  require_same_dtype(x, y, op, "x", "y");
  require(Op::RmsNorm, x.dtype());
  const auto [rows, D] = rows_and_dim(x, op, "x");
  require_shape(weight, {D}, op, "weight");
  OMNI_CHECK(weight.dtype() == DType::F32 || weight.dtype() == DType::BF16, op,
             ": weight expected F32 or BF16, found ", dtype_name(weight.dtype()));
  if (rstd) {  // the training form: everything F32
    require_dtype(x, DType::F32, op, "x (saving rstd)");
    require_dtype(weight, DType::F32, op, "weight (saving rstd)");
    on_device(*rstd, op, "rstd");
    require_dtype(*rstd, DType::F32, op, "rstd");
    OMNI_CHECK(rstd->numel() == rows, op, ": rstd expected ", rows, " entries (one per row of x ",
               shape_str(x.shape()), "), found ", shape_str(rstd->shape()));
  }
  rms_norm_impl(y, x, weight, eps, rstd);
}

namespace {

void check_rope(const Tensor& x, const Tensor& positions, const char* op, const char* name) {
  OMNI_CHECK(x.ndim() >= 3, op, ": ", name, " expected [N, H, hd] (any leading dims), found ", shape_str(x.shape()));
  OMNI_CHECK(x.dim(-1) % 2 == 0, op, ": ", name, " head dim must be even, found ", x.dim(-1));
  require_dtype(positions, DType::I32, op, "positions");
  const int64_t N = x.numel() / (x.dim(-1) * x.dim(-2));
  OMNI_CHECK(positions.numel() == N, op, ": positions expected ", N, " entries for ", name, " ",
             shape_str(x.shape()), ", found ", shape_str(positions.shape()));
}

}  // namespace

void Backend::rope(Tensor& x, const Tensor& positions, const RopeParams& params) {
  on_device(x, "rope", "x");
  on_device(positions, "rope", "positions");
  check_rope(x, positions, "rope", "x");
  require(Op::Rope, x.dtype());
  rope_impl(x, positions, params, /*inverse=*/false);
}

void Backend::rope_backward(Tensor& dx, const Tensor& positions, const RopeParams& params) {
  on_device(dx, "rope_backward", "dx");
  on_device(positions, "rope_backward", "positions");
  check_rope(dx, positions, "rope_backward", "dx");
  require(Op::RopeBackward, dx.dtype());
  rope_impl(dx, positions, params, /*inverse=*/true);
}

void Backend::add_rms_norm(Tensor& sum, Tensor& y, const Tensor& a, const Tensor& b, const Tensor& weight,
                           float eps) {
  const char* op = "add_rms_norm";
  on_device(sum, op, "sum");
  on_device(y, op, "y");
  on_device(a, op, "a");
  on_device(b, op, "b");
  on_device(weight, op, "weight");
  for (const Tensor* t : std::initializer_list<const Tensor*>{&sum, &y, &b}) {
    const char* name = t == &sum ? "sum" : t == &y ? "y" : "b";
    require_same_shape(a, *t, op, "a", name);
    require_same_dtype(a, *t, op, "a", name);
  }
  OMNI_CHECK(y.raw() != sum.raw() && y.raw() != a.raw() && y.raw() != b.raw(), op,
             ": y must be distinct from sum, a and b");
  require(Op::Add, a.dtype());
  require(Op::RmsNorm, a.dtype());
  const auto [rows, D] = rows_and_dim(a, op, "a");
  (void)rows;
  require_shape(weight, {D}, op, "weight");
  OMNI_CHECK(weight.dtype() == DType::F32 || weight.dtype() == DType::BF16, op,
             ": weight expected F32 or BF16, found ", dtype_name(weight.dtype()));
  add_rms_norm_impl(sum, y, a, b, weight, eps);
}

void Backend::add_rms_norm_impl(Tensor& sum, Tensor& y, const Tensor& a, const Tensor& b, const Tensor& weight,
                                float eps) {
  add_impl(sum, a, b);
  rms_norm_impl(y, sum, weight, eps, nullptr);
}

void Backend::rms_norm_rope(Tensor& y, const Tensor& x, const Tensor& weight, float eps, const Tensor& positions,
                            const RopeParams& params, const Tensor* rows) {
  const char* op = "rms_norm_rope";
  on_device(y, op, "y");
  on_device(x, op, "x");
  on_device(weight, op, "weight");
  on_device(positions, op, "positions");
  check_rope(x, positions, op, "x");
  require_same_dtype(x, y, op, "x", "y");
  require(Op::RmsNorm, x.dtype());
  require(Op::Rope, x.dtype());
  const int64_t hd = x.dim(-1), H = x.dim(-2), N = x.numel() / (H * hd);
  require_shape(weight, {hd}, op, "weight");
  OMNI_CHECK(weight.dtype() == DType::F32 || weight.dtype() == DType::BF16, op,
             ": weight expected F32 or BF16, found ", dtype_name(weight.dtype()));
  if (rows) {
    on_device(*rows, op, "rows");
    require_dtype(*rows, DType::I32, op, "rows");
    OMNI_CHECK(rows->numel() == N, op, ": rows expected ", N, " entries (one per row of x), found ",
               shape_str(rows->shape()));
    OMNI_CHECK(y.ndim() >= 2 && y.dim(-1) == hd && y.dim(-2) == H, op, ": y expected [R, ", H, ", ", hd,
               "] (rows of x's heads), found ", shape_str(y.shape()));
    OMNI_CHECK(y.raw() != x.raw(), op, ": with rows, y must be distinct from x");
  } else {
    require_same_shape(x, y, op, "x", "y");
  }
  rms_norm_rope_impl(y, x, weight, eps, positions, params, rows);
}

void Backend::rms_norm_rope_impl(Tensor& y, const Tensor& x, const Tensor& weight, float eps, const Tensor& positions,
                                 const RopeParams& params, const Tensor* rows) {
  if (!rows) {
    rms_norm_impl(y, x, weight, eps, nullptr);
    rope_impl(y, positions, params, /*inverse=*/false);
    return;
  }
  Tensor t = alloc(x.shape(), x.dtype());
  rms_norm_impl(t, x, weight, eps, nullptr);
  rope_impl(t, positions, params, /*inverse=*/false);
  const int64_t W = x.dim(-1) * x.dim(-2);
  Tensor dst = y.view({y.numel() / W, W});
  copy_rows_impl(dst, t.view({t.numel() / W, W}), *rows);
}

void Backend::attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionRows& rows,
                        Tensor* lse) {
  const char* op = "attention";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&out, &q, &k, &v}) on_device(*t, op, t == &out ? "out" : t == &q ? "q" : "k/v");
  const AttentionDims d = attention_dims(q, k, v, rows, op);
  require_same_shape(q, out, op, "q", "out");
  require_same_dtype(q, out, op, "q", "out");
  require(Op::Attention, q.dtype());
  if (lse) {  // the training form: everything F32
    require_dtype(q, DType::F32, op, "q (saving lse)");
    on_device(*lse, op, "lse");
    require_dtype(*lse, DType::F32, op, "lse");
    OMNI_CHECK(lse->numel() == d.N * d.Hq, op, ": lse expected ", d.N * d.Hq, " entries [N, Hq], found ",
               shape_str(lse->shape()));
    OMNI_CHECK(rows.whole_sequences, op, ": saving lse needs rows.whole_sequences");
    // lse exists for the backward: with the full mask it is that capability's.
    if (rows.mask == AttentionMask::Full) require(Op::AttentionFullBackward, DType::F32);
  }
  attention_impl(out, q, k, v, rows, lse);
}

void Backend::attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                 const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                 const AttentionRows& rows) {
  const char* op = "attention_backward";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dq, &dk, &dv, &dout, &q, &k, &v, &out, &lse}) {
    on_device(*t, op, "argument");
    require_dtype(*t, DType::F32, op, "every argument");
  }
  const AttentionDims d = attention_dims(q, k, v, rows, op);
  OMNI_CHECK(rows.whole_sequences, op, ": needs rows.whole_sequences");
  require(rows.mask == AttentionMask::Full ? Op::AttentionFullBackward : Op::AttentionBackward, DType::F32);
  require_same_shape(q, out, op, "q", "out");
  require_same_shape(q, dout, op, "q", "dout");
  require_same_shape(q, dq, op, "q", "dq");
  require_same_shape(k, dk, op, "k", "dk");
  require_same_shape(v, dv, op, "v", "dv");
  OMNI_CHECK(lse.numel() == d.N * d.Hq, op, ": lse expected ", d.N * d.Hq, " entries, found ",
             shape_str(lse.shape()));
  attention_backward_impl(dq, dk, dv, dout, q, k, v, out, lse, rows);
}

void Backend::check_elementwise(Op op, const Tensor& y, const Tensor& a, const Tensor& b, const char* na,
                                const char* nb) const {
  const char* name = op_name(op);
  on_device(y, name, "y");
  on_device(a, name, na);
  on_device(b, name, nb);
  require_same_shape(a, b, name, na, nb);
  require_same_shape(a, y, name, na, "y");
  require_same_dtype(a, b, name, na, nb);
  require_same_dtype(a, y, name, na, "y");
  require(op, y.dtype());
}

void Backend::silu_mul(Tensor& y, const Tensor& gate, const Tensor& up) {
  check_elementwise(Op::SiluMul, y, gate, up, "gate", "up");
  silu_mul_impl(y, gate, up);
}

void Backend::add(Tensor& y, const Tensor& a, const Tensor& b) {
  check_elementwise(Op::Add, y, a, b, "a", "b");
  add_impl(y, a, b);
}

void Backend::copy(Tensor& dst, const Tensor& src) {
  on_device(dst, "copy", "dst");
  on_device(src, "copy", "src");
  const bool convert = dst.dtype() != src.dtype() && is_float(dst.dtype()) && is_float(src.dtype());
  OMNI_CHECK((dst.dtype() == src.dtype() || convert) && dst.numel() == src.numel(), "copy: dst ",
             dtype_name(dst.dtype()), " ", shape_str(dst.shape()), " and src ", dtype_name(src.dtype()), " ",
             shape_str(src.shape()), " must have the same element count and the same dtype (or two float dtypes)");
  if (convert)
    convert_impl(dst, src);
  else
    copy_impl(dst, src);
}

void Backend::convert_impl(Tensor& dst, const Tensor& src) {
  OMNI_CHECK(device().is_cpu(), "copy: backend ", name(), " cannot convert ", dtype_name(src.dtype()), " to ",
             dtype_name(dst.dtype()));
  const Tensor t = src.to(dst.dtype());
  std::memcpy(dst.raw(), t.raw(), t.nbytes());
}

void Backend::copy_rows(Tensor& dst, const Tensor& src, const Tensor& index) {
  const char* op = "copy_rows";
  on_device(dst, op, "dst");
  on_device(src, op, "src");
  on_device(index, op, "index");
  require_same_dtype(dst, src, op, "dst", "src");
  require_dtype(index, DType::I32, op, "index");
  const auto [n, W] = rows_and_dim(src, op, "src");
  const auto [R, Wd] = rows_and_dim(dst, op, "dst");
  OMNI_CHECK(W == Wd, op, ": src rows of ", W, " and dst rows of ", Wd, " differ");
  OMNI_CHECK(index.numel() == n, op, ": index expected ", n, " entries (one per src row), found ",
             shape_str(index.shape()));
  require(Op::CopyRows, src.dtype());
  (void)R;  // the backend checks each index against R as it reads them
  copy_rows_impl(dst, src, index);
}

void Backend::softmax(Tensor& x) {
  on_device(x, "softmax", "x");
  rows_and_dim(x, "softmax", "x");
  require(Op::Softmax, x.dtype());
  softmax_impl(x);
}

void Backend::layer_norm(Tensor& y, const Tensor& x, float eps, const Tensor* weight, const Tensor* bias) {
  const char* op = "layer_norm";
  on_device(x, op, "x");
  on_device(y, op, "y");
  require_same_shape(x, y, op, "x", "y");
  require_same_dtype(x, y, op, "x", "y");
  require(Op::LayerNorm, x.dtype());
  const auto [rows, D] = rows_and_dim(x, op, "x");
  (void)rows;
  OMNI_CHECK((weight == nullptr) == (bias == nullptr), op, ": weight and bias go together (both or neither)");
  for (const Tensor* t : std::initializer_list<const Tensor*>{weight, bias}) {
    if (!t) continue;
    const char* name = t == weight ? "weight" : "bias";
    on_device(*t, op, name);
    require_shape(*t, {D}, op, name);
    OMNI_CHECK(t->dtype() == DType::F32 || t->dtype() == DType::BF16, op, ": ", name, " expected F32 or BF16, found ",
               dtype_name(t->dtype()));
  }
  layer_norm_impl(y, x, eps, weight, bias);
}

void Backend::gelu_tanh(Tensor& y, const Tensor& x) {
  check_elementwise(Op::GeluTanh, y, x, x, "x", "x");
  gelu_tanh_impl(y, x);
}

void Backend::modulate(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift) {
  const char* op = "modulate";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&y, &x, &scale, &shift})
    on_device(*t, op, t == &y ? "y" : t == &x ? "x" : t == &scale ? "scale" : "shift");
  OMNI_CHECK(x.ndim() == 3, op, ": x expected [B, T, D], found ", shape_str(x.shape()));
  require_same_shape(x, y, op, "x", "y");
  require_same_dtype(x, y, op, "x", "y");
  require_same_dtype(x, scale, op, "x", "scale");
  require_same_dtype(x, shift, op, "x", "shift");
  require_shape(scale, {x.dim(0), x.dim(2)}, op, "scale");
  require_shape(shift, {x.dim(0), x.dim(2)}, op, "shift");
  require(Op::Modulate, x.dtype());
  modulate_impl(y, x, scale, shift);
}

void Backend::silu(Tensor& y, const Tensor& x) {
  const char* op = "silu";
  on_device(x, op, "x");
  on_device(y, op, "y");
  require_same_shape(x, y, op, "x", "y");
  require_same_dtype(x, y, op, "x", "y");
  require(Op::Silu, x.dtype());
  silu_impl(y, x);
}

void Backend::gated_add(Tensor& y, const Tensor& x, const Tensor& gate, const Tensor& h) {
  const char* op = "gated_add";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&y, &x, &gate, &h})
    on_device(*t, op, t == &y ? "y" : t == &x ? "x" : t == &gate ? "gate" : "h");
  OMNI_CHECK(x.ndim() == 3, op, ": x expected [B, T, D], found ", shape_str(x.shape()));
  require_same_shape(x, y, op, "x", "y");
  require_same_shape(x, h, op, "x", "h");
  require_same_dtype(x, y, op, "x", "y");
  require_same_dtype(x, h, op, "x", "h");
  require_same_dtype(x, gate, op, "x", "gate");
  require_shape(gate, {x.dim(0), x.dim(2)}, op, "gate");
  require(Op::GatedAdd, x.dtype());
  gated_add_impl(y, x, gate, h);
}

void Backend::rope_interleaved(Tensor& x, const Tensor& cos, const Tensor& sin) {
  const char* op = "rope_interleaved";
  on_device(x, op, "x");
  on_device(cos, op, "cos");
  on_device(sin, op, "sin");
  OMNI_CHECK(x.ndim() == 3 && x.dim(2) % 2 == 0, op, ": x expected [N, H, hd] with an even hd, found ",
             shape_str(x.shape()));
  require_dtype(cos, DType::F32, op, "cos");
  require_dtype(sin, DType::F32, op, "sin");
  require_shape(cos, {x.dim(0), x.dim(2)}, op, "cos");
  require_shape(sin, {x.dim(0), x.dim(2)}, op, "sin");
  require(Op::RopeInterleaved, x.dtype());
  rope_interleaved_impl(x, cos, sin);
}

void Backend::silu_impl(Tensor&, const Tensor&) { OMNI_FAIL("silu is not implemented on ", name(), " yet"); }
void Backend::gated_add_impl(Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  OMNI_FAIL("gated_add is not implemented on ", name(), " yet");
}
void Backend::rope_interleaved_impl(Tensor&, const Tensor&, const Tensor&) {
  OMNI_FAIL("rope_interleaved is not implemented on ", name(), " yet");
}

void Backend::conv2d(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, int64_t padding) {
  const char* op = "conv2d";
  on_device(y, op, "y");
  on_device(x, op, "x");
  on_device(w, op, "w");
  OMNI_CHECK(x.ndim() == 4, op, ": x expected [B, Cin, H, W], found ", shape_str(x.shape()));
  OMNI_CHECK(w.ndim() == 4 && w.numel() > 0, op, ": w expected non-empty [Cout, Cin, kh, kw], found ",
             shape_str(w.shape()));
  require_dtype(w, DType::F32, op, "w");
  OMNI_CHECK(w.dim(1) == x.dim(1), op, ": w ", shape_str(w.shape()), " takes ", w.dim(1), " input channels, x ",
             shape_str(x.shape()), " has ", x.dim(1));
  OMNI_CHECK(padding >= 0, op, ": padding must be non-negative, found ", padding);
  const int64_t Ho = x.dim(2) + 2 * padding - w.dim(2) + 1, Wo = x.dim(3) + 2 * padding - w.dim(3) + 1;
  OMNI_CHECK(Ho > 0 && Wo > 0, op, ": a ", w.dim(2), "x", w.dim(3), " kernel with padding ", padding,
             " does not fit x ", shape_str(x.shape()));
  require_shape(y, {x.dim(0), w.dim(0), Ho, Wo}, op, "y");
  require_same_dtype(x, y, op, "x", "y");
  OMNI_CHECK(y.raw() != x.raw(), op, ": y must be distinct from x");
  if (bias) {
    on_device(*bias, op, "bias");
    require_dtype(*bias, DType::F32, op, "bias");
    require_shape(*bias, {w.dim(0)}, op, "bias");
  }
  require(Op::Conv2d, x.dtype());
  conv2d_impl(y, x, w, bias, padding);
}

void Backend::group_norm(Tensor& y, const Tensor& x, int64_t groups, float eps, const Tensor* weight,
                         const Tensor* bias) {
  const char* op = "group_norm";
  on_device(y, op, "y");
  on_device(x, op, "x");
  OMNI_CHECK(x.ndim() >= 2 && x.numel() > 0, op, ": x expected non-empty [B, C, ...], found ", shape_str(x.shape()));
  require_same_shape(x, y, op, "x", "y");
  require_same_dtype(x, y, op, "x", "y");
  const int64_t C = x.dim(1);
  OMNI_CHECK(groups > 0 && C % groups == 0, op, ": ", groups, " groups do not divide the ", C, " channels of x ",
             shape_str(x.shape()));
  OMNI_CHECK((weight == nullptr) == (bias == nullptr), op, ": weight and bias go together (both or neither)");
  for (const Tensor* t : std::initializer_list<const Tensor*>{weight, bias}) {
    if (!t) continue;
    const char* name = t == weight ? "weight" : "bias";
    on_device(*t, op, name);
    require_dtype(*t, DType::F32, op, name);
    require_shape(*t, {C}, op, name);
  }
  require(Op::GroupNorm, x.dtype());
  group_norm_impl(y, x, groups, eps, weight, bias);
}

void Backend::upsample_nearest2x(Tensor& y, const Tensor& x) {
  const char* op = "upsample_nearest2x";
  on_device(y, op, "y");
  on_device(x, op, "x");
  OMNI_CHECK(x.ndim() >= 2 && x.numel() > 0, op, ": x expected non-empty [..., H, W], found ", shape_str(x.shape()));
  Shape want = x.shape();
  want[want.size() - 2] *= 2;
  want[want.size() - 1] *= 2;
  require_shape(y, want, op, "y");
  require_same_dtype(x, y, op, "x", "y");
  require(Op::UpsampleNearest2x, x.dtype());
  upsample_nearest2x_impl(y, x);
}

void Backend::transpose(Tensor& y, const Tensor& x) {
  const char* op = "transpose";
  on_device(y, op, "y");
  on_device(x, op, "x");
  OMNI_CHECK(x.ndim() >= 2 && x.numel() > 0, op, ": x expected non-empty [..., M, N], found ", shape_str(x.shape()));
  Shape want = x.shape();
  std::swap(want[want.size() - 2], want[want.size() - 1]);
  require_shape(y, want, op, "y");
  require_same_dtype(x, y, op, "x", "y");
  OMNI_CHECK(y.raw() != x.raw(), op, ": y must be distinct from x");
  require(Op::Transpose, x.dtype());
  transpose_impl(y, x);
}

void Backend::conv2d_impl(Tensor&, const Tensor&, const Tensor&, const Tensor*, int64_t) {
  OMNI_FAIL("conv2d is not implemented on ", name(), " yet");
}
void Backend::group_norm_impl(Tensor&, const Tensor&, int64_t, float, const Tensor*, const Tensor*) {
  OMNI_FAIL("group_norm is not implemented on ", name(), " yet");
}
void Backend::upsample_nearest2x_impl(Tensor&, const Tensor&) {
  OMNI_FAIL("upsample_nearest2x is not implemented on ", name(), " yet");
}
void Backend::transpose_impl(Tensor&, const Tensor&) { OMNI_FAIL("transpose is not implemented on ", name(), " yet"); }

void Backend::quick_gelu(Tensor& y, const Tensor& x) {
  check_elementwise(Op::QuickGelu, y, x, x, "x", "x");
  quick_gelu_impl(y, x);
}

void Backend::mul(Tensor& y, const Tensor& a, const Tensor& b) {
  check_elementwise(Op::Mul, y, a, b, "a", "b");
  mul_impl(y, a, b);
}

void Backend::attention_with_bias(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                                  float scale) {
  const char* op = "attention_with_bias";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&out, &q, &k, &v, &bias})
    on_device(*t, op, t == &out ? "out" : t == &q ? "q" : t == &k ? "k" : t == &v ? "v" : "bias");
  OMNI_CHECK(q.ndim() == 4 && q.numel() > 0, op, ": q expected non-empty [B, Lq, H, hd], found ",
             shape_str(q.shape()));
  const int64_t B = q.dim(0), Lq = q.dim(1), H = q.dim(2), hd = q.dim(3);
  OMNI_CHECK(k.ndim() == 4 && k.numel() > 0 && k.dim(0) == B && k.dim(2) == H && k.dim(3) == hd, op,
             ": k expected [", B, ", Lk, ", H, ", ", hd, "] (q's samples, heads and head dim), found ",
             shape_str(k.shape()));
  require_same_shape(k, v, op, "k", "v");
  require_same_shape(q, out, op, "q", "out");
  require_same_dtype(q, k, op, "q", "k");
  require_same_dtype(q, v, op, "q", "v");
  require_same_dtype(q, out, op, "q", "out");
  require(Op::AttentionWithBias, q.dtype());
  require_dtype(bias, DType::F32, op, "bias");
  const int64_t Lk = k.dim(1);
  const Shape shared{H, Lq, Lk}, per_sample{B, H, Lq, Lk};
  OMNI_CHECK(bias.shape() == shared || bias.shape() == per_sample, op, ": bias expected ", shape_str(shared),
             " (shared by the samples) or ", shape_str(per_sample), ", found ", shape_str(bias.shape()));
  OMNI_CHECK(std::isfinite(scale), op, ": scale must be finite, found ", scale);
  OMNI_CHECK(out.raw() != q.raw() && out.raw() != k.raw() && out.raw() != v.raw(), op,
             ": out must be distinct from q, k and v");
  attention_with_bias_impl(out, q, k, v, bias, scale);
}

void Backend::quick_gelu_impl(Tensor&, const Tensor&) { OMNI_FAIL("quick_gelu is not implemented on ", name(), " yet"); }
void Backend::mul_impl(Tensor&, const Tensor&, const Tensor&) { OMNI_FAIL("mul is not implemented on ", name(), " yet"); }
void Backend::attention_with_bias_impl(Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, float) {
  OMNI_FAIL("attention_with_bias is not implemented on ", name(), " yet");
}

void Backend::linear_backward(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                              bool accumulate_dx, bool accumulate_dw) {
  const char* op = "linear_backward";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dy, &x, &w}) {
    on_device(*t, op, t == &dy ? "dy" : t == &x ? "x" : "w");
    require_dtype(*t, DType::F32, op, t == &dy ? "dy" : t == &x ? "x" : "w");
  }
  require(Op::LinearBackward, DType::F32);
  OMNI_CHECK(w.ndim() == 2, op, ": w expected 2 dims [N, K], found ", shape_str(w.shape()));
  linear_rows(dy, x, w.dim(1), w.dim(0), op, "dy");
  if (dx) {
    on_device(*dx, op, "dx");
    require_dtype(*dx, DType::F32, op, "dx");
    require_shape(*dx, x.shape(), op, "dx");
  }
  if (dw) {
    on_device(*dw, op, "dw");
    require_dtype(*dw, DType::F32, op, "dw");
    require_shape(*dw, w.shape(), op, "dw");
  }
  linear_backward_impl(dx, dw, dy, x, w, accumulate_dx, accumulate_dw);
}

void Backend::rms_norm_backward(Tensor& dx, Tensor* dweight, const Tensor& dy, const Tensor& x,
                                const Tensor& weight, const Tensor& rstd, bool accumulate_dx) {
  const char* op = "rms_norm_backward";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dx, &dy, &x, &weight, &rstd}) {
    on_device(*t, op, "argument");
    require_dtype(*t, DType::F32, op, "every argument");
  }
  require(Op::RmsNormBackward, DType::F32);
  const auto [rows, D] = rows_and_dim(x, op, "x");
  require_shape(dy, x.shape(), op, "dy");
  require_shape(dx, x.shape(), op, "dx");
  require_shape(weight, {D}, op, "weight");
  OMNI_CHECK(rstd.numel() == rows, op, ": rstd expected ", rows, " entries (one per row of x ",
             shape_str(x.shape()), "), found ", shape_str(rstd.shape()));
  OMNI_CHECK(!(accumulate_dx && dx.raw() == dy.raw()), op, ": dx may not alias dy when accumulating");
  if (dweight) {
    on_device(*dweight, op, "dweight");
    require_dtype(*dweight, DType::F32, op, "dweight");
    require_shape(*dweight, {D}, op, "dweight");
  }
  rms_norm_backward_impl(dx, dweight, dy, x, weight, rstd, accumulate_dx);
}

void Backend::silu_mul_backward(Tensor& dgate, Tensor& dup, const Tensor& dy, const Tensor& gate,
                                const Tensor& up) {
  const char* op = "silu_mul_backward";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dgate, &dup, &dy, &gate, &up}) {
    on_device(*t, op, "argument");
    require_dtype(*t, DType::F32, op, "every argument");
    require_shape(*t, gate.shape(), op, "every argument (the shape of gate)");
  }
  require(Op::SiluMulBackward, DType::F32);
  silu_mul_backward_impl(dgate, dup, dy, gate, up);
}

double Backend::masked_mse_loss(const Tensor& y, const Tensor& ref, const Tensor& mask, Tensor* dy, double dloss) {
  const char* op = "masked_mse_loss";
  on_device(y, op, "y");
  on_device(ref, op, "ref");
  on_device(mask, op, "mask");
  require_dtype(y, DType::F32, op, "y");
  require_dtype(ref, DType::F32, op, "ref");
  require_shape(ref, y.shape(), op, "ref");
  require(Op::MaskedMseLoss, DType::F32);
  const auto [rows, D] = rows_and_dim(y, op, "y");
  require_dtype(mask, DType::U8, op, "mask");
  OMNI_CHECK(mask.numel() == rows, op, ": mask expected ", rows, " entries (one per row of y ", shape_str(y.shape()),
             "), found ", shape_str(mask.shape()));
  if (dy) {
    on_device(*dy, op, "dy");
    require_dtype(*dy, DType::F32, op, "dy");
    require_shape(*dy, y.shape(), op, "dy");
  }
  return masked_mse_loss_impl(y, ref, mask, dy, dloss);
}

namespace {

// Every tensor of a diffusion-transformer backward op: on the device and F32.
void all_f32(const Backend& be, std::initializer_list<std::pair<const Tensor*, const char*>> ts, const char* op) {
  for (const auto& [t, name] : ts) {
    OMNI_CHECK(t->defined(), op, ": ", name, " is undefined");
    OMNI_CHECK(t->device() == be.device(), op, ": ", name, " is on ", device_name(t->device()), ", expected ",
               device_name(be.device()));
    require_dtype(*t, DType::F32, op, name);
  }
}

// x [B, T, D] and a per-sample vector v [B, D] (modulate's scale, gated_add's gate and their gradients).
void check_per_sample(const Tensor& x, const Tensor& v, const char* op, const char* xname, const char* vname) {
  OMNI_CHECK(x.ndim() == 3, op, ": ", xname, " expected [B, T, D], found ", shape_str(x.shape()));
  require_shape(v, {x.dim(0), x.dim(2)}, op, vname);
}

}  // namespace

void Backend::layer_norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, float eps, bool accumulate_dx) {
  const char* op = "layer_norm_backward";
  all_f32(*this, {{&dx, "dx"}, {&dy, "dy"}, {&x, "x"}}, op);
  rows_and_dim(x, op, "x");
  require_shape(dy, x.shape(), op, "dy");
  require_shape(dx, x.shape(), op, "dx");
  OMNI_CHECK(!(accumulate_dx && dx.raw() == dy.raw()), op, ": dx may not alias dy when accumulating");
  require(Op::LayerNormBackward, DType::F32);
  layer_norm_backward_impl(dx, dy, x, eps, accumulate_dx);
}

void Backend::gelu_tanh_backward(Tensor& dx, const Tensor& dy, const Tensor& x) {
  const char* op = "gelu_tanh_backward";
  all_f32(*this, {{&dx, "dx"}, {&dy, "dy"}, {&x, "x"}}, op);
  require_shape(dy, x.shape(), op, "dy");
  require_shape(dx, x.shape(), op, "dx");
  require(Op::GeluTanhBackward, DType::F32);
  gelu_tanh_backward_impl(dx, dy, x);
}

void Backend::modulate_backward(Tensor& dx, Tensor& dscale, Tensor& dshift, const Tensor& dy, const Tensor& x,
                                const Tensor& scale) {
  const char* op = "modulate_backward";
  all_f32(*this, {{&dx, "dx"}, {&dscale, "dscale"}, {&dshift, "dshift"}, {&dy, "dy"}, {&x, "x"}, {&scale, "scale"}},
          op);
  check_per_sample(x, scale, op, "x", "scale");
  require_shape(dy, x.shape(), op, "dy");
  require_shape(dx, x.shape(), op, "dx");
  require_shape(dscale, scale.shape(), op, "dscale");
  require_shape(dshift, scale.shape(), op, "dshift");
  OMNI_CHECK(dscale.raw() != dshift.raw(), op, ": dscale and dshift must be distinct");
  require(Op::ModulateBackward, DType::F32);
  modulate_backward_impl(dx, dscale, dshift, dy, x, scale);
}

void Backend::gated_add_backward(Tensor& dgate, Tensor& dh, const Tensor& dy, const Tensor& gate, const Tensor& h) {
  const char* op = "gated_add_backward";
  all_f32(*this, {{&dgate, "dgate"}, {&dh, "dh"}, {&dy, "dy"}, {&gate, "gate"}, {&h, "h"}}, op);
  check_per_sample(h, gate, op, "h", "gate");
  require_shape(dy, h.shape(), op, "dy");
  require_shape(dh, h.shape(), op, "dh");
  require_shape(dgate, gate.shape(), op, "dgate");
  require(Op::GatedAddBackward, DType::F32);
  gated_add_backward_impl(dgate, dh, dy, gate, h);
}

void Backend::rope_interleaved_backward(Tensor& dx, const Tensor& cos, const Tensor& sin) {
  const char* op = "rope_interleaved_backward";
  all_f32(*this, {{&dx, "dx"}, {&cos, "cos"}, {&sin, "sin"}}, op);
  OMNI_CHECK(dx.ndim() == 3 && dx.dim(2) % 2 == 0, op, ": dx expected [N, H, hd] with an even hd, found ",
             shape_str(dx.shape()));
  require_shape(cos, {dx.dim(0), dx.dim(2)}, op, "cos");
  require_shape(sin, {dx.dim(0), dx.dim(2)}, op, "sin");
  require(Op::RopeInterleavedBackward, DType::F32);
  rope_interleaved_backward_impl(dx, cos, sin);
}

void Backend::layer_norm_backward_impl(Tensor&, const Tensor&, const Tensor&, float, bool) {
  OMNI_FAIL("layer_norm_backward is not implemented on ", name(), " yet");
}
void Backend::gelu_tanh_backward_impl(Tensor&, const Tensor&, const Tensor&) {
  OMNI_FAIL("gelu_tanh_backward is not implemented on ", name(), " yet");
}
void Backend::modulate_backward_impl(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  OMNI_FAIL("modulate_backward is not implemented on ", name(), " yet");
}
void Backend::gated_add_backward_impl(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  OMNI_FAIL("gated_add_backward is not implemented on ", name(), " yet");
}
void Backend::rope_interleaved_backward_impl(Tensor&, const Tensor&, const Tensor&) {
  OMNI_FAIL("rope_interleaved_backward is not implemented on ", name(), " yet");
}

namespace {

// w [N, K], v [N, K], alpha and beta [N, G] for the scheme, all F32: the shapes fake_quant and its backward share.
void check_qdq_shapes(const Tensor& w, const Tensor& v, const Tensor& alpha, const Tensor& beta,
                      const QuantScheme& scheme, const char* op) {
  OMNI_CHECK(w.ndim() == 2 && w.dim(0) > 0 && w.dim(1) > 0, op, ": w expected [N, K], found ", shape_str(w.shape()));
  const int64_t G = scheme.num_groups_for(w.dim(1));
  require_shape(v, w.shape(), op, "v");
  require_shape(alpha, {w.dim(0), G}, op, "alpha");
  require_shape(beta, {w.dim(0), G}, op, "beta");
}

}  // namespace

void Backend::fake_quant(Tensor& w_hat, const Tensor& w, const Tensor& v, const Tensor& alpha, const Tensor& beta,
                         const QuantScheme& scheme) {
  const char* op = "fake_quant";
  scheme.validate();
  for (const Tensor* t : std::initializer_list<const Tensor*>{&w_hat, &w, &v, &alpha, &beta}) {
    on_device(*t, op, "argument");
    require_dtype(*t, DType::F32, op, "every argument");
  }
  require(Op::FakeQuant, DType::F32);
  check_qdq_shapes(w, v, alpha, beta, scheme, op);
  require_shape(w_hat, w.shape(), op, "w_hat");
  fake_quant_impl(w_hat, w, v, alpha, beta, scheme);
}

void Backend::fake_quant_backward(Tensor& grad_v, Tensor& grad_alpha, Tensor& grad_beta, const Tensor& grad_w_hat,
                                  const Tensor& w, const Tensor& v, const Tensor& alpha, const Tensor& beta,
                                  const QuantScheme& scheme) {
  const char* op = "fake_quant_backward";
  scheme.validate();
  for (const Tensor* t :
       std::initializer_list<const Tensor*>{&grad_v, &grad_alpha, &grad_beta, &grad_w_hat, &w, &v, &alpha, &beta}) {
    on_device(*t, op, "argument");
    require_dtype(*t, DType::F32, op, "every argument");
  }
  require(Op::FakeQuantBackward, DType::F32);
  check_qdq_shapes(w, v, alpha, beta, scheme, op);
  require_shape(grad_w_hat, w.shape(), op, "grad_w_hat");
  require_shape(grad_v, v.shape(), op, "grad_v");
  require_shape(grad_alpha, alpha.shape(), op, "grad_alpha");
  require_shape(grad_beta, beta.shape(), op, "grad_beta");
  fake_quant_backward_impl(grad_v, grad_alpha, grad_beta, grad_w_hat, w, v, alpha, beta, scheme);
}

void Backend::clamp(Tensor& x, float lo, float hi) {
  on_device(x, "clamp", "x");
  require_dtype(x, DType::F32, "clamp", "x");
  OMNI_CHECK(lo <= hi, "clamp: lo ", lo, " exceeds hi ", hi);
  require(Op::Clamp, DType::F32);
  clamp_impl(x, lo, hi);
}

void Backend::sign_step(Tensor& p, const Tensor& g, float lr) {
  on_device(p, "sign_step", "p");
  on_device(g, "sign_step", "g");
  require_dtype(p, DType::F32, "sign_step", "p");
  require_dtype(g, DType::F32, "sign_step", "g");
  require_same_shape(p, g, "sign_step", "p", "g");
  require(Op::SignStep, DType::F32);
  sign_step_impl(p, g, lr);
}

void Backend::fill(Tensor& x, float value) {
  on_device(x, "fill", "x");
  require_dtype(x, DType::F32, "fill", "x");
  require(Op::Fill, DType::F32);
  fill_impl(x, value);
}

}  // namespace omni
