// The op set every backend (CPU now, CUDA next) implements. Activations are F32 row-major tensors on the
// backend's device; weights arrive as stored in the checkpoint and are prepared once into the backend's layout.
// Backward ops (for AutoRound tuning) are *_backward methods beside their forwards; a forward whose backward
// needs saved values has a *_forward_train variant that saves them.
#pragma once

#include <memory>
#include <string>

#include "backends/linear_weight.h"
#include "core/tensor.h"

namespace omni {

// A Linear weight in a backend's own layout (e.g. repacked int4 tiles). Opaque to callers.
class PreparedLinear {
 public:
  virtual ~PreparedLinear() = default;
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool has_bias = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;

  // Uninitialised activation buffer on this backend's device.
  virtual Tensor alloc(const Shape& shape, DType dtype) = 0;

  // Converts a checkpoint weight into this backend's layout, once, at load time.
  virtual std::shared_ptr<const PreparedLinear> prepare_linear(const LinearWeight& w) = 0;

  // y[M, N] = x[M, K] · Wᵀ (+ bias). x and y may have any leading dims; the last one is K / N.
  virtual void linear_forward(Tensor& y, const Tensor& x, const PreparedLinear& w) = 0;
  // y[T, D] = table[ids[t], :]; ids I32 [T], table F32/BF16/F16 [V, D].
  virtual void embedding_forward(Tensor& y, const Tensor& ids, const Tensor& table) = 0;
  // y = x / sqrt(mean(x²) + eps) * weight over the last dim; weight F32/BF16 [D]. y may alias x.
  virtual void rmsnorm_forward(Tensor& y, const Tensor& x, const Tensor& weight, float eps) = 0;
  // In-place rotary embedding (rotate-half / NeoX layout) of x [T, H, hd] at positions I32 [T].
  virtual void rope_forward(Tensor& x, const Tensor& positions, float theta) = 0;
  // Causal grouped-query attention. q [B, T, Hq, hd]; k, v [B, S, Hkv, hd] with S >= start_pos + T; query t
  // sees keys 0 .. start_pos + t. out [B, T, Hq, hd]. Scale 1/sqrt(hd). Hq must be a multiple of Hkv.
  virtual void attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                 int64_t start_pos) = 0;
  // y = silu(gate) * up, elementwise.
  virtual void silu_mul_forward(Tensor& y, const Tensor& gate, const Tensor& up) = 0;
  // y = a + b, elementwise. y may alias a or b.
  virtual void add_forward(Tensor& y, const Tensor& a, const Tensor& b) = 0;
  // dst = src elementwise, same dtype and numel (e.g. writing new keys into a slice of the KV cache).
  virtual void copy(Tensor& dst, const Tensor& src) = 0;
  // Row-wise softmax over the last dim, in place.
  virtual void softmax_forward(Tensor& x) = 0;
  // Copies a tensor from this backend to a CPU F32 tensor (logits for sampling).
  virtual Tensor to_cpu(const Tensor& x) = 0;
  // dst (this backend's device) = src (CPU), same dtype and numel: inputs and tuned weights for training.
  virtual void copy_from_cpu(Tensor& dst, const Tensor& src) = 0;

  // ---- Training (AutoRound block tuning, AUTOROUND.md §1–§2) ----
  // All F32 on this backend's device, contiguous row-major. A forward that the backward needs saves exactly what
  // its *_backward takes. Input gradients overwrite their buffer unless accumulate_* says to add (an activation
  // read by several consumers). Fake quantization (QDQ) is not here: it runs in quant/ on CPU weights, and the
  // trainer uploads Ŵ with copy_from_cpu (backends do not depend on quant/).

  // y[M, N] = x[M, K] · wᵀ with a dense F32 weight w [N, K] that changes every step (not prepared), no bias.
  // x and y may have any leading dims; the last one is K / N.
  virtual void linear_forward_train(Tensor& y, const Tensor& x, const Tensor& w) = 0;
  // For y = x · wᵀ: dx (+)= dy · w, dw (+)= dyᵀ · x (summed over all rows of x / dy). dx and dw may each be null.
  virtual void linear_backward(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                               bool accumulate_dx, bool accumulate_dw) = 0;
  // rmsnorm_forward over the last dim that also saves rstd [rows] = 1 / sqrt(mean(x²) + eps), rows = numel / D
  // (the per-head q/k norm is x [..., H, hd], weight [hd]). weight F32 [D]. y may alias x.
  virtual void rmsnorm_forward_train(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) = 0;
  // dx (+)= ∂L/∂x from dy, the forward's input x, weight and rstd. dweight, if given, is added to (F32 [D]).
  // dx may alias dy unless accumulate_dx.
  virtual void rmsnorm_backward(Tensor& dx, Tensor* dweight, const Tensor& dy, const Tensor& x,
                                const Tensor& weight, const Tensor& rstd, bool accumulate_dx) = 0;
  // In-place rotary embedding (rotate-half / NeoX layout, as rope_forward) of x [B, T, H, hd] at positions
  // 0..T−1 of every sample.
  virtual void rope_forward_train(Tensor& x, float theta) = 0;
  // In place on the gradient dx [B, T, H, hd]: the inverse rotation of rope_forward_train.
  virtual void rope_backward(Tensor& dx, float theta) = 0;
  // Causal grouped-query attention of B sequences at positions 0..T−1 (no cache): q [B, T, Hq, hd], k and v
  // [B, T, Hkv, hd], out [B, T, Hq, hd], scale 1/sqrt(hd); also saves the log-sum-exp of every score row,
  // lse [B, T, Hq]. Hq must be a multiple of Hkv.
  virtual void attention_forward_train(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k,
                                       const Tensor& v) = 0;
  // Overwrites dq, dk, dv (shapes of q, k, v) from dout and what attention_forward_train took and produced.
  virtual void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                  const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse) = 0;
  // For y = silu(gate) · up (silu_mul_forward): dgate, dup from dy. Either may alias dy.
  virtual void silu_mul_backward(Tensor& dgate, Tensor& dup, const Tensor& dy, const Tensor& gate,
                                 const Tensor& up) = 0;
  // The block loss L = Σ over rows r with mask[r] ≠ 0 of Σ_d (y − ref)² / (count · D), count = unmasked rows,
  // rows = numel / D. mask U8 [rows]. Returns L; when dy is given it receives dloss · ∂L/∂y (0 on masked rows).
  // Throws when no row counts.
  virtual double masked_mse_loss(const Tensor& y, const Tensor& ref, const Tensor& mask, Tensor* dy,
                                 double dloss) = 0;
};

// The process-wide CPU backend.
Backend& cpu_backend();

}  // namespace omni
