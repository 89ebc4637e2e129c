// The CPU implementation of Backend: shape/dtype checks, then the plain kernels of this folder.
#pragma once

#include <vector>

#include "backends/backend.h"
#include "backends/cpu/w4a16_matmul.h"

namespace omni {

// A Linear weight ready for the CPU kernels. Dense F32/BF16 weights stay borrowed from the checkpoint (no
// copy); F16 is converted to F32 once; int4 weights are repacked (w4a16_matmul.h).
class CpuPreparedLinear : public PreparedLinear {
 public:
  Tensor dense;           // F32 or BF16 [N, K] when not quantised
  W4A16CpuWeights w4;     // when quantized
  bool is_quantized = false;
  std::vector<float> bias;  // [N] in f32, empty without bias
};

class CpuBackend : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }
  Tensor alloc(const Shape& shape, DType dtype) override;
  std::shared_ptr<const PreparedLinear> prepare_linear(const LinearWeight& w) override;
  void linear_forward(Tensor& y, const Tensor& x, const PreparedLinear& w) override;
  void embedding_forward(Tensor& y, const Tensor& ids, const Tensor& table) override;
  void rmsnorm_forward(Tensor& y, const Tensor& x, const Tensor& weight, float eps) override;
  void rope_forward(Tensor& x, const Tensor& positions, float theta) override;
  void attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                         int64_t start_pos) override;
  void silu_mul_forward(Tensor& y, const Tensor& gate, const Tensor& up) override;
  void add_forward(Tensor& y, const Tensor& a, const Tensor& b) override;
  void copy(Tensor& dst, const Tensor& src) override;
  void softmax_forward(Tensor& x) override;
  Tensor to_cpu(const Tensor& x) override;
  void copy_from_cpu(Tensor& dst, const Tensor& src) override;

  // Training ops (cpu_backend_train.cpp): the f32 kernels of *_backward.h.
  void linear_forward_train(Tensor& y, const Tensor& x, const Tensor& w) override;
  void linear_backward(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                       bool accumulate_dx, bool accumulate_dw) override;
  void rmsnorm_forward_train(Tensor& y, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) override;
  void rmsnorm_backward(Tensor& dx, Tensor* dweight, const Tensor& dy, const Tensor& x, const Tensor& weight,
                        const Tensor& rstd, bool accumulate_dx) override;
  void rope_forward_train(Tensor& x, float theta) override;
  void rope_backward(Tensor& dx, float theta) override;
  void attention_forward_train(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k,
                               const Tensor& v) override;
  void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                          const Tensor& v, const Tensor& out, const Tensor& lse) override;
  void silu_mul_backward(Tensor& dgate, Tensor& dup, const Tensor& dy, const Tensor& gate,
                         const Tensor& up) override;
  double masked_mse_loss(const Tensor& y, const Tensor& ref, const Tensor& mask, Tensor* dy,
                         double dloss) override;
};

}  // namespace omni
