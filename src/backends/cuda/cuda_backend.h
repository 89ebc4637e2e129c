// The CUDA implementation of Backend (backend.h) for one device: activations in BF16 (or F16, or F32 for tests and
// the tuner) with f32 accumulation and f32 statistics; training and AutoRound ops in f32. All work is queued on
// one stream; memory comes from the device's caching allocator (device_allocator.h); dense matrix products go
// through cuBLAS. A kernel that finds bad input (an id outside the table) records it on the device, and the next
// synchronize() or download() raises it as an error naming the op and the row.
//
// Capture (backend.h) records the stream's work into a CUDA graph (cudaStreamBeginCapture, thread-local mode) and
// replays it with cudaGraphLaunch; allocations inside it come from the allocator's cache only. Enabled unless the
// environment sets OMNI_CUDA_GRAPHS=0.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/device_allocator.h"
#include "backends/cuda/kernels/fault.h"
#include "backends/cuda/w4a16/w4a16_gemm.h"

namespace omni::cuda {

// A Linear weight on the device: 4-bit weights repacked for the W4A16 kernels (w4a16/), or dense in the
// backend's compute dtype (checkpoint 16-bit weights, and quantized ones the kernels do not take, dequantized
// once), plus an f32 bias.
class CudaPreparedLinear : public PreparedLinear {
 public:
  bool w4a16 = false;
  W4A16DeviceWeights w4;  // views of `buffers` when w4a16
  std::vector<Tensor> buffers;
  std::string fallback_reason;  // why a quantized weight is dense, for the load report
  Tensor dense;  // [N, K] in the activation dtype, when not w4a16
  Tensor bias;   // F32 [N] or undefined
  std::string layout() const override {
    if (w4a16) return "w4a16";
    const std::string d = "dense " + std::string(dtype_name(dense.dtype()));
    return fallback_reason.empty() ? d : d + " (dequantized: " + fallback_reason + ")";
  }
};

class CudaBackend : public Backend {
 public:
  // Throws when `device` is not a usable CUDA device.
  CudaBackend(int device, DType activation_dtype);
  ~CudaBackend() override;

  std::string name() const override;
  Device device() const override { return Device::cuda(device_); }
  bool supports(Op op, DType dtype) const override;
  void synchronize() override;
  Tensor alloc(const Shape& shape, DType dtype) override;
  std::shared_ptr<const PreparedLinear> prepare_linear(const LinearWeight& w) override;

  bool supports_capture() const override { return capture_enabled(); }
  void begin_capture() override;
  std::unique_ptr<CapturedWork> end_capture() override;
  void abort_capture() noexcept override;
  void replay(const CapturedWork& work) override;
  // Since construction: graphs instantiated, replays, captures that failed, and why the last one failed.
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }
  int64_t capture_failures() const { return capture_failures_; }
  const std::string& last_capture_failure() const { return last_capture_failure_; }

  DeviceMemoryStats memory_stats() const { return allocator_->stats(); }
  // Quantized Linears prepared for the W4A16 kernels and those dequantized instead (since construction).
  int64_t w4a16_linears() const { return w4a16_linears_; }
  int64_t dequantized_linears() const { return dequantized_linears_; }
  cudaStream_t stream() const { return stream_; }

 protected:
  Tensor upload_impl(const Tensor& host) override;
  Tensor download_impl(const Tensor& x) override;
  void copy_from_cpu_impl(Tensor& dst, const Tensor& src) override;
  void linear_impl(Tensor& y, const Tensor& x, const PreparedLinear& w) override;
  void linear_dense_impl(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) override;
  void embedding_impl(Tensor& y, const Tensor& ids, const Tensor& table) override;
  void rms_norm_impl(Tensor& y, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) override;
  void rope_impl(Tensor& x, const Tensor& positions, const RopeParams& params, bool inverse) override;
  void attention_impl(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionRows& rows,
                      Tensor* lse) override;
  void silu_mul_impl(Tensor& y, const Tensor& gate, const Tensor& up) override;
  void add_impl(Tensor& y, const Tensor& a, const Tensor& b) override;
  void copy_impl(Tensor& dst, const Tensor& src) override;
  void convert_impl(Tensor& dst, const Tensor& src) override;
  void add_rms_norm_impl(Tensor& sum, Tensor& y, const Tensor& a, const Tensor& b, const Tensor& weight,
                         float eps) override;
  void rms_norm_rope_impl(Tensor& y, const Tensor& x, const Tensor& weight, float eps, const Tensor& positions,
                          const RopeParams& params, const Tensor* rows) override;
  void copy_rows_impl(Tensor& dst, const Tensor& src, const Tensor& index) override;
  void softmax_impl(Tensor& x) override;
  void layer_norm_impl(Tensor& y, const Tensor& x, float eps, const Tensor* weight, const Tensor* bias) override;
  void gelu_tanh_impl(Tensor& y, const Tensor& x) override;
  void modulate_impl(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift) override;
  // The diffusion-transformer, text-encoder and VAE ops (cuda_backend_diffusion.cpp).
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
  void fake_quant_impl(Tensor& w_hat, const Tensor& w, const Tensor& v, const Tensor& alpha, const Tensor& beta,
                       const QuantScheme& scheme) override;
  void fake_quant_backward_impl(Tensor& grad_v, Tensor& grad_alpha, Tensor& grad_beta, const Tensor& grad_w_hat,
                                const Tensor& w, const Tensor& v, const Tensor& alpha, const Tensor& beta,
                                const QuantScheme& scheme) override;
  void clamp_impl(Tensor& x, float lo, float hi) override;
  void sign_step_impl(Tensor& p, const Tensor& g, float lr) override;
  void fill_impl(Tensor& x, float value) override;

 private:
  // y[M, N] (+)= x[M, K] · w[N, K]ᵀ through cuBLAS, all three of dtype dt, f32 accumulation.
  void gemm_xwt(void* y, const void* x, const void* w, int64_t M, int64_t N, int64_t K, DType dt, float beta);
  // Raises (and clears) a fault recorded by a kernel since the last check. Call after a synchronisation.
  void check_faults();
  // Throws when a capture is being recorded: `what` is not allowed inside one.
  void not_capturing(const char* what) const;

  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::shared_ptr<DeviceAllocator> allocator_;
  DeviceFault* fault_ = nullptr;  // device memory, one record
  // Pinned host memory: the fault record's copy, read after each synchronisation (one round trip with the
  // stream's own wait), and a staging buffer for small downloads (the logits of a decode step).
  DeviceFault* fault_host_ = nullptr;
  void* stage_ = nullptr;
  size_t stage_bytes_ = 0;
  int sm_count_ = 1;
  Tensor attention_counters_;  // I32 [kAttentionCounters], zero between launches (the key-split attention)
  int64_t w4a16_linears_ = 0, dequantized_linears_ = 0;
  Tensor cublas_workspace_;  // set explicitly, so cuBLAS allocates nothing inside a capture
  bool capturing_ = false;
  int64_t captures_ = 0, replays_ = 0, capture_failures_ = 0;
  std::string last_capture_failure_;
};

}  // namespace omni::cuda
