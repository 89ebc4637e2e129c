// The op set every backend (CPU now, CUDA next) implements. Activations are F32 row-major tensors on the
// backend's device; weights arrive as stored in the checkpoint and are prepared once into the backend's layout.
// Backward ops (for AutoRound tuning) join this interface as *_backward methods beside their forwards.
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
};

// The process-wide CPU backend.
Backend& cpu_backend();

}  // namespace omni
