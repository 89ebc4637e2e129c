// The contract every backend (CPU now, CUDA next) implements: one op set for inference and for AutoRound
// training, in parameterised families, each validated once here and computed by the backend.
//
// - Public ops are non-virtual: they check devices, dtypes and shapes (the same checks for every backend, with
//   the op and the tensor named in the error), then call the backend's protected *_impl. A backend states what
//   it computes with supports(); an op it does not support is a clear error naming backend, op and dtype.
// - Activations are in the backend's activation dtype (F32, or BF16/F16 for A16 runs); statistics (RMSNorm's
//   rstd, attention's log-sum-exp, the loss) are always F32. Training ops are F32 (the tuner's contract).
// - Memory comes from alloc(); upload()/download() are zero-copy on a host backend. Work may be queued:
//   synchronize() waits for it (download() synchronizes).
// - Tensors are contiguous and row-major; "rows" means numel / last dim.
#pragma once

#include <memory>
#include <string>

#include "backends/linear_weight.h"
#include "backends/qdq_formula.h"
#include "core/tensor.h"

namespace omni {

// A Linear weight in a backend's own layout (e.g. repacked int4 tiles). Opaque to callers.
class PreparedLinear {
 public:
  virtual ~PreparedLinear() = default;
  // How the backend holds and multiplies this weight ("w4a16", "dense BF16 (dequantized: ...)"), for load
  // reports and tests that must know which path ran.
  virtual std::string layout() const = 0;
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool has_bias = false;
  // Bytes of weight data (codes, scales, zero points or dense values, bias excluded) one use reads: what a decode
  // step streams from memory for this layer, the numerator of a bandwidth roofline.
  int64_t weight_bytes = 0;
};

// The op families, for supports().
enum class Op {
  Linear, LinearDense, LinearBackward, Embedding, RmsNorm, RmsNormBackward, Rope, RopeBackward, Attention,
  AttentionBackward, SiluMul, SiluMulBackward, Add, Copy, CopyRows, Softmax, MaskedMseLoss,
  FakeQuant, FakeQuantBackward, Clamp, SignStep, Fill, LayerNorm, GeluTanh, Modulate, Silu, GatedAdd,
  RopeInterleaved, Conv2d, GroupNorm, UpsampleNearest2x, Transpose, QuickGelu, Mul, AttentionWithBias,
  // The diffusion transformers' training ops (FLUX blocks' backward), F32:
  LayerNormBackward, GeluTanhBackward, ModulateBackward, GatedAddBackward, RopeInterleavedBackward,
  AttentionFullBackward,  // the full mask's training forms: attention saving lse, and attention_backward
};
const char* op_name(Op op);

// Rotary embedding parameters. Rotate-half (NeoX) layout over the whole head (HF Qwen/Llama default rope).
struct RopeParams {
  float theta = 10000.f;
};

// Which keys a query row sees. Queries q [N, Hq, hd]; keys and values k, v [S, C, Hkv, hd]: S sequence slots
// of capacity C (a KV cache, or for training the batch itself: S samples of C tokens). Row i belongs to slot
// `slot[i]` at position `position[i]` (I32 [N] each, on the backend's device).
//   Causal: row i sees keys 0..position[i] of its slot.
//   Full: row i sees all C keys of its slot (a joint sequence attended without a mask, as in a diffusion
//   transformer; the slot's C positions must all be filled). Its training forms (saving lse, the backward) are
//   a capability of their own, Op::AttentionFullBackward.
// Scores are scaled by 1/sqrt(hd); query head h reads kv head h / (Hq / Hkv).
enum class AttentionMask { Causal, Full };
struct AttentionRows {
  Tensor slot, position;
  AttentionMask mask = AttentionMask::Causal;
  // The rows are exactly slots 0..S−1 × positions 0..C−1 in order (training batches): lets backends use
  // whole-sequence kernels. Required by attention_backward and by attention with lse.
  bool whole_sequences = false;
};

// Queued work recorded once and replayed (a CUDA graph on the CUDA backend). Opaque; owned by the caller, who
// must destroy it before the backend. It holds the device memory the recorded work uses.
class CapturedWork {
 public:
  virtual ~CapturedWork() = default;
};

class Backend {
 public:
  explicit Backend(DType activation_dtype);
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  DType activation_dtype() const { return activation_dtype_; }
  // Whether this backend computes `op` with activations (or its main operand) in `dtype`.
  virtual bool supports(Op op, DType dtype) const = 0;
  // Waits for all queued work.
  virtual void synchronize() {}

  // Uninitialised buffer on this backend's device.
  virtual Tensor alloc(const Shape& shape, DType dtype) = 0;
  // A host tensor on this backend (the same tensor on a host backend, else a device copy, same dtype).
  Tensor upload(const Tensor& host);
  // This backend's tensor as a CPU F32 tensor (converted; shared when it already is one on a host backend).
  Tensor download(const Tensor& x);
  // dst (this backend) = src (CPU), same dtype and numel.
  void copy_from_cpu(Tensor& dst, const Tensor& src);

  // ---- Capture (optional; a backend that does not support it just runs every op eagerly) ----
  // Whether begin_capture() can be used: the backend records and replays work, and capture is enabled (the
  // CUDA backend turns it off with OMNI_CUDA_GRAPHS=0 in the environment, or set_capture_enabled(false)).
  virtual bool supports_capture() const { return false; }
  void set_capture_enabled(bool on) { capture_enabled_ = on; }
  bool capture_enabled() const { return capture_enabled_; }
  // Between begin_capture() and end_capture() ops are recorded, NOT executed. Allowed inside a capture: the ops
  // on tensors that already exist, and alloc() of a size the backend has cached (freed earlier and not yet
  // returned to the device; on CUDA an allocation that would need cudaMalloc fails the capture). Not allowed:
  // synchronize(), download(), upload() and copy_from_cpu() (host transfers and synchronisation), and so
  // anything that checks device faults or reads a result on the host. The shapes, pointers and host-side
  // arguments of the ops are frozen into the recording: a replay repeats exactly the same launches on the same
  // memory, so inputs that change per replay must live in device memory written (copy_from_cpu) before
  // replay(). Memory alloc()ed inside the capture stays owned by the returned CapturedWork. Faults recorded by
  // kernels during a replay are raised by the next synchronize() or download(), as for eager work.
  // end_capture() returns null when the capture failed (the recorded work is discarded, nothing ran: run the
  // same ops eagerly instead); an exception between the two must be followed by abort_capture().
  virtual void begin_capture();
  virtual std::unique_ptr<CapturedWork> end_capture();
  virtual void abort_capture() noexcept {}
  // Queues the recorded work once more (asynchronously, like any op).
  virtual void replay(const CapturedWork& work);

  // Converts a checkpoint weight into this backend's layout, once, at load time.
  virtual std::shared_ptr<const PreparedLinear> prepare_linear(const LinearWeight& w) = 0;

  // ---- Inference and training ----
  // y[M, N] = x[M, K] · Wᵀ (+ bias) with a prepared weight. Any leading dims; the last one is K / N.
  void linear(Tensor& y, const Tensor& x, const PreparedLinear& w);
  // y = x · wᵀ (+ bias) with a dense F32 weight w [N, K] that changes every step (training), bias F32 [N] or null.
  void linear_dense(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias = nullptr);
  // y[T, D] = table[ids[t], :]; ids I32 [T], table F32/BF16/F16 [V, D].
  void embedding(Tensor& y, const Tensor& ids, const Tensor& table);
  // y = x · rsqrt(mean(x²) + eps) · weight over the last dim; weight F32/BF16 [D]; y may alias x. With rstd
  // (F32 [rows]) the per-row 1/rms is saved for rms_norm_backward: the training form, x and weight F32.
  void rms_norm(Tensor& y, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd = nullptr);
  // In-place rotary embedding of x [N, H, hd] (any leading dims with N rows of H heads) at positions I32 [N].
  void rope(Tensor& x, const Tensor& positions, const RopeParams& params);
  // Fused inference forms (supported where their parts are; a backend that does not fuse them runs the parts,
  // with the same results):
  // sum = a + b, then y = rms_norm(sum): the residual add and the norm that follows it. sum may alias a or b;
  // y must be distinct from all three. No rstd (inference).
  void add_rms_norm(Tensor& sum, Tensor& y, const Tensor& a, const Tensor& b, const Tensor& weight, float eps);
  // y = rope(rms_norm(x)) per head (Qwen3's q/k norm, then RoPE): x [N, H, hd] (any leading dims), weight [hd],
  // positions I32 [N]; the normed values are rounded to the activation dtype before the rotation, as the two ops
  // in sequence round them. Without rows, y has x's shape and may alias x. With rows (I32 [N]), row n of the result
  // goes to row rows[n] of y [R, H, hd] (keys written straight into a KV cache; other rows untouched).
  void rms_norm_rope(Tensor& y, const Tensor& x, const Tensor& weight, float eps, const Tensor& positions,
                     const RopeParams& params, const Tensor* rows = nullptr);
  // out [N, Hq, hd] = softmax(q·kᵀ/sqrt(hd)) · v over the keys `rows` allows. With lse (F32 [N, Hq]) the
  // log-sum-exp of every score row is saved for attention_backward: the training form, F32 and
  // rows.whole_sequences (with the full mask: where the backend supports Op::AttentionFullBackward).
  void attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionRows& rows,
                 Tensor* lse = nullptr);
  // y = silu(gate) · up; y may alias gate or up.
  void silu_mul(Tensor& y, const Tensor& gate, const Tensor& up);
  // y = a + b; y may alias a or b.
  void add(Tensor& y, const Tensor& a, const Tensor& b);
  // dst = src, same numel: the same dtype (bits copied), or F32/BF16/F16 into another of them (converted, rounded
  // to nearest even, as download() converts).
  void copy(Tensor& dst, const Tensor& src);
  // dst.row(index[i]) = src.row(i): src [N, W], dst [R, W] (any leading dims, same last dim and dtype), index
  // I32 [N] with values in [0, R) (writing new keys into a KV cache).
  void copy_rows(Tensor& dst, const Tensor& src, const Tensor& index);
  // Row-wise softmax over the last dim, in place.
  void softmax(Tensor& x);
  // y = (x − mean) / sqrt(var + eps) over the last dim (biased variance, torch.nn.LayerNorm), then · weight + bias
  // when given (F32 or BF16 [D], both or neither: FLUX's adaLN norms have none). y may alias x.
  void layer_norm(Tensor& y, const Tensor& x, float eps, const Tensor* weight = nullptr, const Tensor* bias = nullptr);
  // y = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))), GELU's tanh form. y may alias x.
  void gelu_tanh(Tensor& y, const Tensor& x);
  // adaLN modulation: y = x · (1 + scale) + shift for x, y [B, T, D], scale and shift [B, D] (one row per sample,
  // broadcast over its T tokens), one dtype. y may alias x.
  void modulate(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift);
  // y = silu(x) = x / (1 + exp(−x)). y may alias x.
  void silu(Tensor& y, const Tensor& x);
  // Gated residual of adaLN-Zero blocks: y = x + gate · h for x, h, y [B, T, D], gate [B, D] (broadcast over the T
  // tokens of its sample), one dtype. y may alias x or h.
  void gated_add(Tensor& y, const Tensor& x, const Tensor& gate, const Tensor& h);
  // In-place rotary embedding with given tables, pairs (2k, 2k+1) rotated together (GPT-J / FLUX layout, not
  // rotate-half): x [N, H, hd] (N token rows of H heads), cos and sin F32 [N, hd] with cos[2k] = cos[2k+1]:
  //   x[2k] ← x[2k]·cos[2k] − x[2k+1]·sin[2k],   x[2k+1] ← x[2k+1]·cos[2k+1] + x[2k]·sin[2k+1].
  void rope_interleaved(Tensor& x, const Tensor& cos, const Tensor& sin);
  // The image ops of a VAE decoder (AutoencoderKL), forward only, NCHW:
  // y [B, Cout, H + 2p − kh + 1, W + 2p − kw + 1] = bias + cross-correlation of x [B, Cin, H, W], zero-padded by
  // p = padding on every side, with w [Cout, Cin, kh, kw] (torch.nn.Conv2d, stride 1, no dilation or groups).
  // w and bias (F32 [Cout], or null) are F32; x and y one activation dtype, distinct.
  void conv2d(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, int64_t padding);
  // torch.nn.GroupNorm: x [B, C, ...] (any spatial dims) in `groups` groups of C / groups consecutive channels;
  // each (sample, group) is normalised over its channels and positions, (x − mean) / sqrt(var + eps) with the
  // biased variance, then · weight[c] + bias[c] (F32 [C], both or neither). y may alias x.
  void group_norm(Tensor& y, const Tensor& x, int64_t groups, float eps, const Tensor* weight = nullptr,
                  const Tensor* bias = nullptr);
  // Nearest-neighbour ×2 upsampling of the last two dims: y [..., 2H, 2W], y[.., i, j] = x[.., i / 2, j / 2]
  // (F.interpolate(scale_factor=2, mode="nearest")). Bits copied, any dtype.
  void upsample_nearest2x(Tensor& y, const Tensor& x);
  // y [..., N, M] = the transpose of the last two dims of x [..., M, N] (NCHW images to token rows and back).
  // Bits copied, any dtype; y distinct from x.
  void transpose(Tensor& y, const Tensor& x);
  // The text encoders' ops (CLIP, T5), forward only:
  // y = x · sigmoid(1.702 x), CLIP's quick GELU. y may alias x.
  void quick_gelu(Tensor& y, const Tensor& x);
  // y = a · b elementwise (T5's gated GELU: gelu(wi_0 x) · wi_1 x). y may alias a or b.
  void mul(Tensor& y, const Tensor& a, const Tensor& b);
  // Attention with an additive score bias and an explicit scale, every key of the sample visible unless the bias
  // hides it (−inf): out [B, Lq, H, hd] = softmax(scale · q·kᵀ + bias) · v per sample and head, softmax over the
  // Lk keys. q, out [B, Lq, H, hd] and k, v [B, Lk, H, hd], one activation dtype (no grouped heads); bias F32,
  // [H, Lq, Lk] shared by the B samples (T5's relative position bias) or [B, H, Lq, Lk]; scale finite (T5 takes
  // 1: its scores are not scaled). A row with every key hidden gives zeros. out distinct from q, k, v.
  void attention_with_bias(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                           float scale);

  // ---- Training backward (F32) ----
  // For y = x · wᵀ: dx (+)= dy · w, dw (+)= dyᵀ · x summed over all rows. dx and dw may each be null.
  void linear_backward(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                       bool accumulate_dx, bool accumulate_dw);
  // dx (+)= ∂L/∂x from dy, the forward's x, weight and saved rstd; dweight (F32 [D]), if given, is added to.
  // dx may alias dy unless accumulate_dx.
  void rms_norm_backward(Tensor& dx, Tensor* dweight, const Tensor& dy, const Tensor& x, const Tensor& weight,
                         const Tensor& rstd, bool accumulate_dx);
  // In place on the gradient: the inverse rotation of rope() at the same positions.
  void rope_backward(Tensor& dx, const Tensor& positions, const RopeParams& params);
  // Overwrites dq, dk, dv from dout and what attention() took and produced (with lse). Causal or full mask (the
  // latter where the backend supports Op::AttentionFullBackward).
  void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                          const Tensor& v, const Tensor& out, const Tensor& lse, const AttentionRows& rows);
  // For y = silu(gate) · up: dgate, dup from dy. Either may alias dy.
  void silu_mul_backward(Tensor& dgate, Tensor& dup, const Tensor& dy, const Tensor& gate, const Tensor& up);
  // L = Σ over rows r with mask[r] ≠ 0 of Σ_d (y − ref)² / (count · D), count = unmasked rows. mask U8 [rows].
  // Returns L; dy, if given, receives dloss · ∂L/∂y (0 on masked rows). Throws when no row counts.
  double masked_mse_loss(const Tensor& y, const Tensor& ref, const Tensor& mask, Tensor* dy, double dloss);
  // The diffusion-transformer backward ops (FLUX blocks), every tensor F32:
  // For y = layer_norm(x, eps) without affine: dx (+)= ∂L/∂x from dy and the forward's x (mean and 1/std are
  // recomputed from x, as the forward computes them). dx may alias dy unless accumulate_dx.
  void layer_norm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, float eps, bool accumulate_dx);
  // For y = gelu_tanh(x): dx = dy · gelu_tanh'(x). dx may alias dy.
  void gelu_tanh_backward(Tensor& dx, const Tensor& dy, const Tensor& x);
  // For y = modulate(x, scale, shift), x, dy [B, T, D], scale [B, D]: dx = dy · (1 + scale); dscale[b] =
  // Σ_t dy[b, t] · x[b, t] and dshift[b] = Σ_t dy[b, t] ([B, D], overwritten). dx may alias dy.
  void modulate_backward(Tensor& dx, Tensor& dscale, Tensor& dshift, const Tensor& dy, const Tensor& x,
                         const Tensor& scale);
  // For y = gated_add(x, gate, h), h, dy [B, T, D], gate [B, D]: dgate[b] = Σ_t dy[b, t] · h[b, t] ([B, D],
  // overwritten) and dh = dy · gate. ∂L/∂x is dy itself (the residual), so it has no output. dh may alias dy.
  void gated_add_backward(Tensor& dgate, Tensor& dh, const Tensor& dy, const Tensor& gate, const Tensor& h);
  // In place on the gradient of rope_interleaved(x, cos, sin): the transposed (inverse) rotation, same tables.
  void rope_interleaved_backward(Tensor& dx, const Tensor& cos, const Tensor& sin);

  // ---- AutoRound parameters (AUTOROUND.md §2), F32, with the formula of backends/qdq_formula.h ----
  // w_hat [N, K] = QDQ(w; v, alpha, beta): groups of scheme.group_size along K; v [N, K]; alpha, beta [N, G]
  // (clamped to [0, 1] as the formula does).
  void fake_quant(Tensor& w_hat, const Tensor& w, const Tensor& v, const Tensor& alpha, const Tensor& beta,
                  const QuantScheme& scheme);
  // Adds the straight-through gradients of Ŵ to grad_v [N, K], grad_alpha, grad_beta [N, G] given
  // grad_w_hat = ∂L/∂Ŵ [N, K] and what fake_quant took.
  void fake_quant_backward(Tensor& grad_v, Tensor& grad_alpha, Tensor& grad_beta, const Tensor& grad_w_hat,
                           const Tensor& w, const Tensor& v, const Tensor& alpha, const Tensor& beta,
                           const QuantScheme& scheme);
  // x = clamp(x, lo, hi) in place.
  void clamp(Tensor& x, float lo, float hi);
  // p −= lr · sign(g), sign(0) = 0 (the SignSGD step).
  void sign_step(Tensor& p, const Tensor& g, float lr);
  // Every element of x = value.
  void fill(Tensor& x, float value);

 protected:
  virtual Tensor upload_impl(const Tensor& host) = 0;
  virtual Tensor download_impl(const Tensor& x) = 0;
  virtual void copy_from_cpu_impl(Tensor& dst, const Tensor& src) = 0;
  virtual void linear_impl(Tensor& y, const Tensor& x, const PreparedLinear& w) = 0;
  virtual void linear_dense_impl(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) = 0;
  virtual void embedding_impl(Tensor& y, const Tensor& ids, const Tensor& table) = 0;
  virtual void rms_norm_impl(Tensor& y, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) = 0;
  virtual void rope_impl(Tensor& x, const Tensor& positions, const RopeParams& params, bool inverse) = 0;
  virtual void attention_impl(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                              const AttentionRows& rows, Tensor* lse) = 0;
  virtual void silu_mul_impl(Tensor& y, const Tensor& gate, const Tensor& up) = 0;
  virtual void add_impl(Tensor& y, const Tensor& a, const Tensor& b) = 0;
  virtual void copy_impl(Tensor& dst, const Tensor& src) = 0;
  // copy() between float dtypes. The default is for host memory (Tensor::to); a device backend overrides it.
  virtual void convert_impl(Tensor& dst, const Tensor& src);
  // The fused ops; the defaults run their parts through the *_impl above.
  virtual void add_rms_norm_impl(Tensor& sum, Tensor& y, const Tensor& a, const Tensor& b, const Tensor& weight,
                                 float eps);
  virtual void rms_norm_rope_impl(Tensor& y, const Tensor& x, const Tensor& weight, float eps,
                                  const Tensor& positions, const RopeParams& params, const Tensor* rows);
  virtual void copy_rows_impl(Tensor& dst, const Tensor& src, const Tensor& index) = 0;
  virtual void softmax_impl(Tensor& x) = 0;
  virtual void layer_norm_impl(Tensor& y, const Tensor& x, float eps, const Tensor* weight, const Tensor* bias) = 0;
  virtual void gelu_tanh_impl(Tensor& y, const Tensor& x) = 0;
  virtual void modulate_impl(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift) = 0;
  // The diffusion-transformer ops added with FLUX; a backend without them fails naming the op.
  virtual void silu_impl(Tensor& y, const Tensor& x);
  virtual void gated_add_impl(Tensor& y, const Tensor& x, const Tensor& gate, const Tensor& h);
  virtual void rope_interleaved_impl(Tensor& x, const Tensor& cos, const Tensor& sin);
  // The VAE decoder's ops; a backend without them fails naming the op.
  virtual void conv2d_impl(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, int64_t padding);
  virtual void group_norm_impl(Tensor& y, const Tensor& x, int64_t groups, float eps, const Tensor* weight,
                               const Tensor* bias);
  virtual void upsample_nearest2x_impl(Tensor& y, const Tensor& x);
  virtual void transpose_impl(Tensor& y, const Tensor& x);
  // The text encoders' ops; a backend without them fails naming the op.
  virtual void quick_gelu_impl(Tensor& y, const Tensor& x);
  virtual void mul_impl(Tensor& y, const Tensor& a, const Tensor& b);
  virtual void attention_with_bias_impl(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& bias, float scale);
  virtual void linear_backward_impl(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                                    bool accumulate_dx, bool accumulate_dw) = 0;
  virtual void rms_norm_backward_impl(Tensor& dx, Tensor* dweight, const Tensor& dy, const Tensor& x,
                                      const Tensor& weight, const Tensor& rstd, bool accumulate_dx) = 0;
  virtual void attention_backward_impl(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                       const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                       const AttentionRows& rows) = 0;
  virtual void silu_mul_backward_impl(Tensor& dgate, Tensor& dup, const Tensor& dy, const Tensor& gate,
                                      const Tensor& up) = 0;
  virtual double masked_mse_loss_impl(const Tensor& y, const Tensor& ref, const Tensor& mask, Tensor* dy,
                                      double dloss) = 0;
  // The diffusion-transformer backward ops; a backend without them fails naming the op.
  virtual void layer_norm_backward_impl(Tensor& dx, const Tensor& dy, const Tensor& x, float eps, bool accumulate_dx);
  virtual void gelu_tanh_backward_impl(Tensor& dx, const Tensor& dy, const Tensor& x);
  virtual void modulate_backward_impl(Tensor& dx, Tensor& dscale, Tensor& dshift, const Tensor& dy, const Tensor& x,
                                      const Tensor& scale);
  virtual void gated_add_backward_impl(Tensor& dgate, Tensor& dh, const Tensor& dy, const Tensor& gate,
                                       const Tensor& h);
  virtual void rope_interleaved_backward_impl(Tensor& dx, const Tensor& cos, const Tensor& sin);
  virtual void fake_quant_impl(Tensor& w_hat, const Tensor& w, const Tensor& v, const Tensor& alpha,
                               const Tensor& beta, const QuantScheme& scheme) = 0;
  virtual void fake_quant_backward_impl(Tensor& grad_v, Tensor& grad_alpha, Tensor& grad_beta,
                                        const Tensor& grad_w_hat, const Tensor& w, const Tensor& v,
                                        const Tensor& alpha, const Tensor& beta, const QuantScheme& scheme) = 0;
  virtual void clamp_impl(Tensor& x, float lo, float hi) = 0;
  virtual void sign_step_impl(Tensor& p, const Tensor& g, float lr) = 0;
  virtual void fill_impl(Tensor& x, float value) = 0;

 private:
  // Throws unless supports(op, dtype).
  void require(Op op, DType dtype) const;
  // Throws unless t is defined and on this backend's device.
  void on_device(const Tensor& t, const char* op, const char* name) const;
  // y = f(a, b) elementwise: all three on the device, one shape and one dtype, the op supported for it.
  void check_elementwise(Op op, const Tensor& y, const Tensor& a, const Tensor& b, const char* na,
                         const char* nb) const;

  DType activation_dtype_;
  bool capture_enabled_ = true;
};

}  // namespace omni
