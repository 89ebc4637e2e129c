// One Qwen3 decoder block set up for AutoRound tuning (AUTOROUND.md §1–§2): every Linear is wrapped with its
// original weight W, trainable rounding offsets V and min/max shrink factors alpha/beta, their gradients and the
// weight the forward currently multiplies by (Ŵ = QDQ(W; V, alpha, beta), or W). The forward runs a micro-batch
// x [B, T, D] (positions 0..T−1 in every sample, causal, no cache) with the same semantics as the inference
// block (qwen3_model.cpp); the backward takes ∂L/∂y and accumulates ∂L/∂V, ∂L/∂alpha, ∂L/∂beta of every
// quantized Linear by the straight-through estimator (qdq_grad.h), optionally returning ∂L/∂x.
//
// Every block op runs through a Backend (backend.h, training ops), with the activations in tensors from its
// alloc(), so that the CUDA backend runs the same block. The AutoRound state (W, V, alpha, beta, their gradients,
// Ŵ) stays in CPU vectors, where quant/ computes QDQ and its STE backward: each forward hands the current Ŵ to the
// backend (borrowed on CPU, copy_from_cpu elsewhere), and each quantized Linear's ∂L/∂Ŵ comes back with to_cpu.
//
// Typical tuner step:
//   trainer.refresh_weights(Qwen3BlockTrainer::WeightMode::FakeQuant);  // clamps alpha/beta, recomputes Ŵ
//   trainer.zero_grads();
//   Tensor y = trainer.forward(x, /*save_activations=*/true);
//   ... loss and dy (masked_mse_loss_backward.h) ...
//   trainer.backward(dy);
//   ... sign step on linear(i).v / alpha / beta using grad_v / grad_alpha / grad_beta ...
//
// Memory: the activations of the last forward's micro-batch only (4·D + 3·Hq·hd + 4·Hkv·hd + 3·I + Hq + Hkv + 2
// floats per token) and backward work buffers of about the same size, plus per Linear W, V, Ŵ, grad_V (4·N·K
// floats) and one N·K scratch shared by all.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "core/tensor.h"
#include "io/model_config.h"
#include "quant/qdq.h"

namespace omni {

// The block's weights in f32, Linear weights in qwen3::kBlockLinears order (q, k, v, o, gate, up, down), [N, K].
struct Qwen3BlockWeightsF32 {
  std::vector<float> input_layernorm, post_attention_layernorm;  // [D]
  std::vector<float> q_norm, k_norm;                              // [head_dim]
  std::array<std::vector<float>, 7> linears;
};

// Reads block `layer` by its Hugging Face names through `get` (e.g. a SafetensorsFile's or checkpoint's
// tensor()), converting F32/BF16/F16 to f32 and checking every shape against `config`.
Qwen3BlockWeightsF32 read_qwen3_block_weights(const Qwen3Config& config, int64_t layer,
                                              const std::function<Tensor(const std::string&)>& get);

// How one Linear is treated.
struct LinearQuantSpec {
  bool quantize = true;  // false: kept dense (no parameters, forward uses W)
  QuantScheme scheme;
};

// A Linear of the block with its AutoRound state. All arrays row-major; G = scheme.num_groups_for(in_features).
struct TunableLinear {
  std::string name;  // relative to the block prefix, e.g. "self_attn.q_proj"
  int64_t out_features = 0, in_features = 0, groups = 0;
  LinearQuantSpec spec;
  std::vector<float> weight;                        // W [N, K], original
  std::vector<float> v, alpha, beta;                // [N, K], [N, G], [N, G]; 0 / 1 / 1 at construction
  std::vector<float> grad_v, grad_alpha, grad_beta; // same shapes; accumulated by backward()
  std::vector<float> weight_used;                   // [N, K]: Ŵ or W, whatever refresh_weights() chose
};

class Qwen3BlockTrainer {
 public:
  enum class WeightMode {
    FakeQuant,  // quantized Linears use Ŵ = QDQ(W; V, alpha, beta), dense ones W
    Original,   // every Linear uses W: the FP block (Y_ref)
  };

  // specs in qwen3::kBlockLinears order. The trainer starts in WeightMode::Original. `backend` runs every op and
  // must outlive the trainer.
  Qwen3BlockTrainer(const Qwen3Config& config, Qwen3BlockWeightsF32 weights,
                    const std::array<LinearQuantSpec, 7>& specs, Backend& backend = cpu_backend());
  // Every Linear quantized with `scheme`.
  Qwen3BlockTrainer(const Qwen3Config& config, Qwen3BlockWeightsF32 weights, const QuantScheme& scheme,
                    Backend& backend = cpu_backend());
  // The trainer hands the backend views of its own vectors: it is neither copied nor moved.
  Qwen3BlockTrainer(const Qwen3BlockTrainer&) = delete;
  Qwen3BlockTrainer& operator=(const Qwen3BlockTrainer&) = delete;

  // FakeQuant: clamps alpha and beta of every quantized Linear to [0, 1] in place, then recomputes Ŵ.
  void refresh_weights(WeightMode mode);
  WeightMode weight_mode() const { return mode_; }

  // x: CPU F32 [B, T, D]. Returns y, CPU F32 [B, T, D]. With save_activations the activations stay for
  // backward(). Uses each Linear's weight_used as it is now (edits after refresh_weights() count).
  Tensor forward(const Tensor& x, bool save_activations);
  // dy: CPU F32 [B, T, D] = ∂L/∂y for the last saved forward. Adds ∂L/∂V, ∂L/∂alpha, ∂L/∂beta of every quantized
  // Linear to its grad_* buffers (dense Linears get nothing). When dx is given it receives ∂L/∂x [B, T, D].
  // Gradients are those of the weights the forward used (call it in FakeQuant mode for tuning).
  void backward(const Tensor& dy, Tensor* dx = nullptr);
  void zero_grads();

  // The input activation, CPU F32 [B·T, in_features], of Linear `index` (kBlockLinears order) in the last forward
  // with save_activations (e.g. for the importance vector of optimized RTN). Throws if there is none. On the CPU
  // backend it shares the saved activation (valid until the next forward), elsewhere it is a copy.
  Tensor linear_input(int index) const;

  const Qwen3Config& config() const { return config_; }
  Backend& backend() const { return backend_; }
  std::array<TunableLinear, 7>& linears() { return linears_; }
  const std::array<TunableLinear, 7>& linears() const { return linears_; }
  TunableLinear& linear(std::string_view name);  // by name, e.g. "mlp.down_proj"; throws if unknown

 private:
  // A reusable activation buffer: `storage` is 1-D with room for the largest shape asked so far, `t` a view of
  // its first elements in the current shape (so micro-batches of any size reuse the same pages).
  struct Buffer {
    Tensor storage, t;
  };
  // Makes b.t a [shape] view of b's storage (grown with backend_.alloc when too small) and returns it.
  Tensor& shaped(Buffer& b, const Shape& shape);
  // `v` as a tensor on the backend: borrowed on CPU, else copied into b.
  Tensor to_backend(std::vector<float>& v, const Shape& shape, Buffer& b);
  // ∂L/∂Ŵ of Linear idx for the saved activations: dx (+)= dout·Ŵ, and for a quantized Linear in FakeQuant mode
  // G = doutᵀ·x folded into its ∂L/∂V, alpha, beta.
  void linear_backward(int idx, Tensor* dx, const Tensor& dout, const Tensor& x, bool accumulate_dx);

  // Activations of one micro-batch (names follow the forward in the .cpp).
  struct Saved {
    int64_t B = 0, T = 0;
    bool valid = false;
    Buffer x, h1, rstd1, q_pre, rstd_q, k_pre, rstd_k, q, k, v, att, lse, x2, h2, rstd2, gate, up, act;
  };

  Backend& backend_;
  Qwen3Config config_;
  Qwen3BlockWeightsF32 norms_;  // the norm weights (its linears are moved into linears_)
  std::array<TunableLinear, 7> linears_;
  WeightMode mode_ = WeightMode::Original;
  Saved s_;
  // The weights on the backend for the last forward (input, post-attention, q and k norm; Ŵ of each Linear) and,
  // off CPU, the buffers holding them.
  std::array<Tensor, 4> forward_norms_;
  std::array<Tensor, 7> forward_w_;
  std::array<Buffer, 4> norm_w_;
  std::array<Buffer, 7> used_w_;
  // Backward work buffers, kept between calls so each step does not fault in fresh pages.
  struct Grads {
    Buffer dy, act, up, h, x2, att, q, k, v;
  } g_;
  Buffer scratch_grad_w_;  // G = ∂L/∂Ŵ of one Linear at a time
};

}  // namespace omni
