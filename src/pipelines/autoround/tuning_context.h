// The tuning side of the block seam (nn/block.h): one block of any architecture set up for AutoRound
// (AUTOROUND.md §1–§2). Every Linear of the block is wrapped with its original weight W, trainable rounding
// offsets V and min/max shrink factors alpha/beta, their gradients and the weight the forward currently
// multiplies by (Ŵ = QDQ(W; V, alpha, beta), or W). The block's own forward and backward (written once, in
// nn/ or models/) run through this context: a Linear multiplies by Ŵ, every named activation is kept for the
// backward, attention stays within each sample (positions 0..T−1; the block's attention_mask(): causal for a
// decoder, the whole joint sequence for a FLUX block) and saves its log-sum-exp, and the backward of each
// quantized Linear folds ∂L/∂Ŵ into ∂L/∂V, ∂L/∂alpha, ∂L/∂beta by the straight-through estimator.
//
// Tensors per sample: every io tensor F32 [B, T, D] (one B; T may differ between them: a FLUX block's image and
// text tokens), passed to the block as its rows [B·T, D]; conditioning tensors (Block::conditioning_names(), e.g.
// FLUX's temb [B, D] and rotary tables [B, L, hd]) beside them, [B, D] as is and [B, L, ...] as rows [B·L, ...],
// handed to the backward too.
//
// Typical tuner step:
//   ctx.refresh_weights(TuningContext::WeightMode::FakeQuant);  // clamps alpha/beta, recomputes Ŵ
//   ctx.zero_grads();
//   NamedTensors y = ctx.forward(x, /*save_activations=*/true);
//   ... loss and dy ...
//   ctx.backward(dy);
//   ... sign step on linear(i).v / alpha / beta using grad_v / grad_alpha / grad_beta ...
//
// The AutoRound state (W, V, alpha, beta, their gradients, Ŵ) lives in backend buffers and is updated by backend
// ops (fake_quant, fake_quant_backward, clamp, sign_step): nothing crosses to the host during tuning but the
// block's inputs, outputs and the loss. Freezing reads the final V/alpha/beta back once (download(), zero-copy
// on the CPU).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nn/block.h"
#include "quant/qdq.h"

namespace omni {

// How one Linear is treated.
struct LinearQuantSpec {
  bool quantize = true;  // false: kept dense (no parameters, forward uses W)
  QuantScheme scheme;
};

// A Linear of the block with its AutoRound state, F32 tensors on the context's backend, row-major;
// G = scheme.num_groups_for(in_features). v, alpha, beta and their gradients exist for quantized Linears only.
struct TunableLinear {
  std::string name;  // relative to the block prefix, e.g. "self_attn.q_proj"
  int64_t out_features = 0, in_features = 0, groups = 0;
  LinearQuantSpec spec;
  Tensor weight;                        // W [N, K], original
  Tensor bias;                          // [N] or undefined; not tuned
  Tensor v, alpha, beta;                // [N, K], [N, G], [N, G]; 0 / 1 / 1 at construction
  Tensor grad_v, grad_alpha, grad_beta; // same shapes; accumulated by backward()
  Tensor weight_used;                   // [N, K]: what the forward multiplies by (Ŵ, or W itself)
  Tensor w_hat;                         // [N, K]: the buffer Ŵ is computed into
};

// Reads a tensor by its full checkpoint name (a checkpoint's tensor(), or a test fixture).
using TensorSource = std::function<Tensor(const std::string&)>;

class TuningContext : public BlockContext {
 public:
  enum class WeightMode {
    FakeQuant,  // quantized Linears use Ŵ = QDQ(W; V, alpha, beta), dense ones W
    Original,   // every Linear uses W: the FP block (Y_ref)
  };

  // Reads the block's parameters and Linears as `prefix + "." + name` through `get` (F32/BF16/F16, shapes
  // checked against the block's descriptions). `spec_of` says how each Linear (by relative name) is treated.
  // `block` and `backend` must outlive the context. Starts in WeightMode::Original.
  TuningContext(const Block& block, const std::string& prefix, const TensorSource& get,
                const std::function<LinearQuantSpec(const LinearDesc&)>& spec_of, Backend& backend);
  TuningContext(const TuningContext&) = delete;
  TuningContext& operator=(const TuningContext&) = delete;

  // FakeQuant: clamps alpha and beta of every quantized Linear to [0, 1] in place, then recomputes Ŵ.
  void refresh_weights(WeightMode mode);
  // Original mode, with the quantized Linears at the given dequantized weights (CPU F32 [N, K] by name): the
  // block as frozen, to advance the quantized chain.
  void use_weights(const std::vector<std::pair<std::string, Tensor>>& weights);
  WeightMode weight_mode() const { return mode_; }

  // in: F32 [B, T, D] per io name of the block and [B, ...] per conditioning name, on the CPU (uploaded) or on the
  // backend (other tensors in `in` are ignored). Returns the outputs, F32 of the io shapes, on the backend
  // (download them to read them on the host). With save_activations the backward may follow. Uses each Linear's
  // weight_used as it is now.
  NamedTensors forward(const NamedTensors& in, bool save_activations);
  // d_out: F32 ∂L/∂out of the last saved forward (CPU or backend). Adds ∂L/∂V, ∂L/∂alpha, ∂L/∂beta of every
  // quantized Linear (in FakeQuant mode) to its grad_* buffers; with d_in, returns ∂L/∂in (F32, on the backend).
  void backward(const NamedTensors& d_out, NamedTensors* d_in = nullptr);
  void zero_grads();

  // The input, CPU F32 [B·T, in_features], of Linear `name` in the last forward with save_activations (e.g. for
  // optimized RTN's importance vector). Throws if there is none.
  Tensor linear_input(std::string_view name) const;

  std::vector<TunableLinear>& linears() { return linears_; }
  const std::vector<TunableLinear>& linears() const { return linears_; }
  TunableLinear& linear(std::string_view name);  // throws if unknown
  const Block& block() const { return block_; }

  // BlockContext
  Backend& backend() override { return be_; }
  bool training() const override { return true; }
  Tensor act(std::string_view name, const Shape& shape) override;
  Tensor stat(std::string_view name, const Shape& shape) override { return act(name, shape); }
  const Tensor& param(std::string_view name) override;
  void linear(std::string_view name, Tensor& y, const Tensor& x) override;
  void linear_backward(std::string_view name, Tensor* dx, const Tensor& dy, const Tensor& x,
                       bool accumulate_dx) override;
  const Tensor& positions() override { return positions_; }
  void attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, Tensor* lse) override;
  void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                          const Tensor& v, const Tensor& out, const Tensor& lse) override;

 private:
  size_t index_of(std::string_view name) const;
  // t itself when it is on the backend's device, else an upload of the CPU tensor.
  Tensor on_backend(const Tensor& t, const char* op);
  // Sets B, T and the positions for a micro-batch.
  void set_batch(int64_t B, int64_t T);
  // The rows of attention within each of the B samples of L rows, with the block's mask (built once per L).
  const AttentionRows& attention_rows(int64_t L);
  Tensor filled(const Shape& shape, float value);

  const Block& block_;
  Backend& be_;
  std::vector<TunableLinear> linears_;
  std::map<std::string, Tensor, std::less<>> params_;
  std::map<std::string, Tensor, std::less<>> buffers_;
  std::map<std::string, Tensor, std::less<>> linear_inputs_;  // the x each Linear read in the last forward
  std::vector<Tensor> forward_w_;  // per Linear: the weight the last forward multiplied by
  Tensor scratch_grad_w_;
  WeightMode mode_ = WeightMode::Original;
  int64_t B_ = 0, T_ = 0;
  Tensor positions_;
  std::map<int64_t, AttentionRows> attention_rows_;  // by sequence length, for the current B
  std::map<std::string, Shape, std::less<>> io_shapes_;  // of the last forward
  NamedTensors conditioning_;  // of the last forward, on the backend, as the block read it
  bool saved_ = false;
};

}  // namespace omni
