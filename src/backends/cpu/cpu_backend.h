// The CPU implementation of Backend: the plain kernels of this folder behind the validated entry points of
// backend.h. Activations are F32, or BF16/F16 (A16 runs): a 16-bit op reads its inputs into f32, runs the f32
// kernel and rounds its output once, as a GPU kernel with f32 accumulation would. Training ops are F32.
#pragma once

#include <vector>

#include "backends/backend.h"
#include "backends/cpu/w4a16_matmul.h"

namespace omni {

// A Linear weight ready for the CPU kernels. Dense F32/BF16 weights stay borrowed from the checkpoint (no
// copy); F16 is converted to F32 once; int4 weights are repacked (w4a16_matmul.h).
class CpuPreparedLinear : public PreparedLinear {
 public:
  Tensor dense;           // F32 or BF16 [N, K] when not quantised, or quantised with codes w4 cannot hold
  W4A16CpuWeights w4;     // 4-bit quantized weights
  bool is_quantized = false;  // true: w4 holds the weight
  std::string dequantized_from;  // why a quantized weight is in `dense` ("3-bit codes"), empty otherwise
  std::vector<float> bias;  // [N] in f32, empty without bias
  std::string layout() const override {
    if (is_quantized) return "w4a16";
    const std::string d = "dense " + std::string(dtype_name(dense.dtype()));
    return dequantized_from.empty() ? d : d + " (dequantized: " + dequantized_from + ")";
  }
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(DType activation_dtype = DType::F32) : Backend(activation_dtype) {}
  std::string name() const override;
  Device device() const override { return Device::CPU; }
  bool supports(Op op, DType dtype) const override;
  Tensor alloc(const Shape& shape, DType dtype) override;
  std::shared_ptr<const PreparedLinear> prepare_linear(const LinearWeight& w) override;

 protected:
  Tensor upload_impl(const Tensor& host) override { return host; }
  Tensor download_impl(const Tensor& x) override;
  void copy_from_cpu_impl(Tensor& dst, const Tensor& src) override { copy_impl(dst, src); }
  void linear_impl(Tensor& y, const Tensor& x, const PreparedLinear& w) override;
  void embedding_impl(Tensor& y, const Tensor& ids, const Tensor& table) override;
  void rms_norm_impl(Tensor& y, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) override;
  void rope_impl(Tensor& x, const Tensor& positions, const RopeParams& params, bool inverse) override;
  void attention_impl(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionRows& rows,
                      Tensor* lse) override;
  void silu_mul_impl(Tensor& y, const Tensor& gate, const Tensor& up) override;
  void add_impl(Tensor& y, const Tensor& a, const Tensor& b) override;
  void copy_impl(Tensor& dst, const Tensor& src) override;
  void copy_rows_impl(Tensor& dst, const Tensor& src, const Tensor& index) override;
  void softmax_impl(Tensor& x) override;
  void layer_norm_impl(Tensor& y, const Tensor& x, float eps, const Tensor* weight, const Tensor* bias) override;
  void gelu_tanh_impl(Tensor& y, const Tensor& x) override;
  void modulate_impl(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift) override;
  void silu_impl(Tensor& y, const Tensor& x) override;
  void gated_add_impl(Tensor& y, const Tensor& x, const Tensor& gate, const Tensor& h) override;
  void rope_interleaved_impl(Tensor& x, const Tensor& cos, const Tensor& sin) override;
  void conv2d_impl(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, int64_t padding) override;
  void group_norm_impl(Tensor& y, const Tensor& x, int64_t groups, float eps, const Tensor* weight,
                       const Tensor* bias) override;
  void upsample_nearest2x_impl(Tensor& y, const Tensor& x) override;
  void transpose_impl(Tensor& y, const Tensor& x) override;
  void quick_gelu_impl(Tensor& y, const Tensor& x) override;
  void mul_impl(Tensor& y, const Tensor& a, const Tensor& b) override;
  void attention_with_bias_impl(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                                float scale) override;

  // Training ops (cpu_backend_train.cpp): the f32 kernels of *_backward.h.
  void linear_dense_impl(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) override;
  void linear_backward_impl(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                            bool accumulate_dx, bool accumulate_dw) override;
  void rms_norm_backward_impl(Tensor& dx, Tensor* dweight, const Tensor& dy, const Tensor& x, const Tensor& weight,
                              const Tensor& rstd, bool accumulate_dx) override;
  void attention_backward_impl(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                               const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                               const AttentionRows& rows) override;
  void silu_mul_backward_impl(Tensor& dgate, Tensor& dup, const Tensor& dy, const Tensor& gate,
                              const Tensor& up) override;
  double masked_mse_loss_impl(const Tensor& y, const Tensor& ref, const Tensor& mask, Tensor* dy,
                              double dloss) override;
  // The diffusion transformers' backward ops (cpu_backend_diffusion_train.cpp).
  void layer_norm_backward_impl(Tensor& dx, const Tensor& dy, const Tensor& x, float eps, bool accumulate_dx) override;
  void gelu_tanh_backward_impl(Tensor& dx, const Tensor& dy, const Tensor& x) override;
  void modulate_backward_impl(Tensor& dx, Tensor& dscale, Tensor& dshift, const Tensor& dy, const Tensor& x,
                              const Tensor& scale) override;
  void gated_add_backward_impl(Tensor& dgate, Tensor& dh, const Tensor& dy, const Tensor& gate,
                               const Tensor& h) override;
  void rope_interleaved_backward_impl(Tensor& dx, const Tensor& cos, const Tensor& sin) override;

  // AutoRound parameter ops (cpu_backend_autoround.cpp).
  void fake_quant_impl(Tensor& w_hat, const Tensor& w, const Tensor& v, const Tensor& alpha, const Tensor& beta,
                       const QuantScheme& scheme) override;
  void fake_quant_backward_impl(Tensor& grad_v, Tensor& grad_alpha, Tensor& grad_beta, const Tensor& grad_w_hat,
                                const Tensor& w, const Tensor& v, const Tensor& alpha, const Tensor& beta,
                                const QuantScheme& scheme) override;
  void clamp_impl(Tensor& x, float lo, float hi) override;
  void sign_step_impl(Tensor& p, const Tensor& g, float lr) override;
  void fill_impl(Tensor& x, float value) override;
};

// The process-wide CPU backend with F32 activations (tools and tests that need no other).
Backend& cpu_backend();

}  // namespace omni
