// The block interface and the seam that lets one block definition serve inference and AutoRound tuning.
//
// An architecture writes each block once: a forward and, for tuning, a backward, against a BlockContext. The
// context decides what a Linear is, where activations live and what attention reads:
//   - the inference context (nn/decoder_lm.cpp) maps a Linear to its prepared BF16/W4A16 weight, activations to
//     a reused arena in the backend's activation dtype, and attention to the KV cache of a token batch;
//   - the tuning context (pipelines/autoround/tuning_context.h) maps a Linear to its fake-quantized weight
//     Ŵ = QDQ(W; V, alpha, beta), keeps every named activation for the backward, and folds ∂L/∂Ŵ into the
//     gradients of V, alpha and beta.
// Names are the checkpoint's, relative to the block prefix ("self_attn.q_proj", "input_layernorm.weight"), so
// the tuner, the loader and the exporter speak the same language without knowing the architecture.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "core/error.h"
#include "core/tensor.h"

namespace omni {

// A Linear of a block: checkpoint name relative to the block prefix (no ".weight"), y[., N] = x[., K] · Wᵀ.
struct LinearDesc {
  std::string name;
  int64_t in_features = 0, out_features = 0;
  bool has_bias = false;
};

// A non-Linear parameter (norm weights), by checkpoint name relative to the block prefix.
struct ParamDesc {
  std::string name;
  Shape shape;
};

// Named tensors flowing into or out of a block ("hidden" for a decoder block; a FLUX double block has "img",
// "txt" and "temb").
class NamedTensors {
 public:
  void set(std::string name, Tensor t);
  Tensor& at(std::string_view name);
  const Tensor& at(std::string_view name) const;
  bool contains(std::string_view name) const;
  const std::vector<std::pair<std::string, Tensor>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, Tensor>> items_;
};

class BlockContext {
 public:
  virtual ~BlockContext() = default;
  virtual Backend& backend() = 0;
  // True when the forward must save what the backward reads (named activations and statistics).
  virtual bool training() const = 0;

  // Activation buffer `name` (an op output), in the run's activation dtype. Asking again for the same name and
  // shape returns the same tensor, so the backward finds what the forward wrote.
  virtual Tensor act(std::string_view name, const Shape& shape) = 0;
  // F32 statistics buffer (rstd of a norm, attention's lse), same reuse rule.
  virtual Tensor stat(std::string_view name, const Shape& shape) = 0;
  // A parameter of the block by its relative checkpoint name, on the backend.
  virtual const Tensor& param(std::string_view name) = 0;

  // The Linear seam: y = x · Wᵀ (+ bias) for the block's Linear `name`.
  virtual void linear(std::string_view name, Tensor& y, const Tensor& x) = 0;
  // Its backward (tuning only): dx (+)= dy · W, and whatever the context does with ∂L/∂W = dyᵀ · x.
  virtual void linear_backward(std::string_view name, Tensor* dx, const Tensor& dy, const Tensor& x,
                               bool accumulate_dx) = 0;

  // Positions of the token rows, I32 [N] on the backend (RoPE).
  virtual const Tensor& positions() = 0;
  // The attention seam: out [N, Hq, hd] from this step's q [N, Hq, hd], k, v [N, Hkv, hd]. Inference appends k, v
  // to the KV cache of the batch's sequences and attends there; tuning attends within each sample and saves lse.
  virtual void attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, Tensor* lse) = 0;
  virtual void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                  const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse) = 0;

  // Inference only: where this step's keys and values go in the layer's KV cache, so that a forward can store
  // them as it computes them (the fused norm + RoPE writes the keys there) and then call attention_cached()
  // instead of attention(). Null where attention() must be given k and v (tuning, the default).
  struct KvRows {
    Tensor k, v;   // the layer's cache as rows [slots · capacity, Hkv, hd]
    Tensor index;  // I32 [N]: the cache row of each token of the batch
  };
  virtual const KvRows* kv_rows() { return nullptr; }
  // out [N, Hq, hd] from q once the step's keys and values are in kv_rows().
  virtual void attention_cached(Tensor& out, const Tensor& q) {
    (void)out;
    (void)q;
    OMNI_FAIL("attention_cached: this context takes keys and values through attention()");
  }
};

// One block definition: its parameters, its Linears, a forward and a backward.
class Block {
 public:
  virtual ~Block() = default;
  virtual const std::vector<LinearDesc>& linears() const = 0;
  virtual const std::vector<ParamDesc>& params() const = 0;
  // The names of the tensors the block reads and writes (the same set: outputs replace inputs).
  virtual std::vector<std::string> io_names() const = 0;
  // Inputs the block only reads (conditioning that is the same for every block of a forward: a FLUX block's
  // "temb" and rotary tables). Calibration caches them beside io_names(); they have no gradient.
  virtual std::vector<std::string> conditioning_names() const { return {}; }
  // Which keys attention() lets a row see within its sample: causal for a decoder, every row of the sample for a
  // diffusion transformer's joint sequence. Contexts that attend by themselves (the tuning context) read it.
  virtual AttentionMask attention_mask() const { return AttentionMask::Causal; }

  // Reads `in`, writes `out` (tensors of the same names and shapes, distinct from the inputs).
  virtual void forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const = 0;
  // After a training forward: from ∂L/∂out, calls ctx.linear_backward for every Linear and, when d_in is
  // given, writes ∂L/∂in into it (tensors the caller provides). d_out also holds the forward's conditioning
  // tensors under their names (read-only; they have no gradient).
  virtual void backward(BlockContext& ctx, const NamedTensors& d_out, NamedTensors* d_in) const = 0;
};

}  // namespace omni
