// The inference context of a text-encoder stack (CLIP's text tower, T5's encoder): B samples of L tokens each,
// rows sample-major [B·L]; every block of the stack reads its prepared Linears and parameters from one
// EncoderLayerWeights, activations are fresh buffers per name (reused from layer to layer), and attention()
// attends within each sample's L rows with the stack's mask (causal for CLIP, full for an encoder without a
// mask). Forward only: the encoders run once per prompt; tuning them would bring its own context.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "nn/block.h"
#include "nn/checkpoint_linears.h"

namespace omni {

struct EncoderLayerWeights {
  std::unordered_map<std::string, Tensor> params;  // F32 on the backend
  std::unordered_map<std::string, std::shared_ptr<const PreparedLinear>> linears;
};

// Every parameter and Linear `def` declares, read from the checkpoint under `prefix` ("encoder.block.3.").
EncoderLayerWeights load_layer_weights(CheckpointLinears& ck, const Block& def, const std::string& prefix);

// What an encoder forward computed on the way (golden tests), CPU F32.
struct TextEncoderTrace {
  Tensor embeddings;           // [B, L, D], the first layer's input
  std::vector<Tensor> layers;  // the output of every layer, before the final norm
};

// The ids of a host I32/I64 [B, L] tensor (B, L ≥ 1) as int64, each checked against [0, vocab); `what` names the
// model in errors.
std::vector<int64_t> read_token_ids(const Tensor& ids, int64_t vocab, const char* what);

class EncoderContext : public BlockContext {
 public:
  EncoderContext(Backend& backend, int64_t B, int64_t L, AttentionMask mask);
  void use(const EncoderLayerWeights& w) { w_ = &w; }

  Backend& backend() override { return backend_; }
  bool training() const override { return false; }
  Tensor act(std::string_view name, const Shape& shape) override;
  Tensor stat(std::string_view name, const Shape& shape) override;
  const Tensor& param(std::string_view name) override;
  void linear(std::string_view name, Tensor& y, const Tensor& x) override;
  void linear_backward(std::string_view, Tensor*, const Tensor&, const Tensor&, bool) override;
  const Tensor& positions() override;
  // q [B·L, H, hd], k, v [B·L, Hkv, hd]: attention within each sample's L rows, with the stack's mask.
  void attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, Tensor* lse) override;
  void attention_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                          const Tensor&, const Tensor&) override;

 private:
  Tensor buffer(std::map<std::string, Tensor, std::less<>>& m, std::string_view name, const Shape& shape, DType dt);

  Backend& backend_;
  int64_t B_, L_;
  const EncoderLayerWeights* w_ = nullptr;
  std::map<std::string, Tensor, std::less<>> acts_, stats_;
  AttentionRows rows_;
  Tensor positions_;
};

}  // namespace omni
