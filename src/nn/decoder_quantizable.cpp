#include "nn/decoder_quantizable.h"

#include "backends/cpu/masked_mse_loss_backward.h"
#include "core/error.h"
#include "nn/decoder_block.h"
#include "nn/decoder_tensors.h"

namespace omni {
namespace {

class DecoderQuantizable : public QuantizableModel {
 public:
  explicit DecoderQuantizable(const DecoderSpec& spec) : spec_(spec), block_(spec) {}

  const std::string& architecture() const override { return spec_.architecture; }
  std::vector<std::string> block_lists() const override { return {spec_.names.block_list}; }
  int64_t num_blocks() const override { return spec_.num_hidden_layers; }
  int64_t max_positions() const override { return spec_.max_position_embeddings; }
  std::string block_prefix(int64_t i) const override { return spec_.names.block_prefix(i); }
  const Block& block(int64_t) const override { return block_; }

  NamedTensors calibration_inputs(const SafetensorsCheckpoint& ckpt, const std::vector<std::vector<int32_t>>& samples,
                                  Backend& backend) const override {
    OMNI_CHECK(!samples.empty(), "no calibration samples");
    const auto n = static_cast<int64_t>(samples.size());
    const auto T = static_cast<int64_t>(samples[0].size());
    std::vector<int32_t> flat;
    for (const auto& s : samples) {
      OMNI_CHECK(static_cast<int64_t>(s.size()) == T, "calibration samples differ in length");
      flat.insert(flat.end(), s.begin(), s.end());
    }
    const Tensor table = ckpt.weight(spec_.names.embed_tokens);
    OMNI_CHECK(table.shape() == Shape({spec_.vocab_size, spec_.hidden_size}), "tensor \"", spec_.names.embed_tokens,
               "\" has shape ", shape_str(table.shape()), ", expected [", spec_.vocab_size, ", ", spec_.hidden_size,
               "]");
    Tensor x = backend.alloc({n * T, spec_.hidden_size}, DType::F32);
    backend.embedding(x, backend.upload(Tensor::from_i32(flat, {n * T})), backend.upload(table));
    NamedTensors in;
    in.set("hidden", backend.download(x).clone().view({n, T, spec_.hidden_size}));
    return in;
  }

  void check_checkpoint(const SafetensorsCheckpoint& ckpt, const std::string& dir) const override {
    const std::map<std::string, Shape> expected = decoder_dense_tensors(spec_, ckpt.contains(spec_.names.lm_head));
    for (const auto& [name, shape] : expected) {
      OMNI_CHECK(ckpt.contains(name), dir, ": tensor \"", name, "\" is missing from the checkpoint (config.json: ",
                 spec_.num_hidden_layers, " layers, hidden ", spec_.hidden_size, ")");
      const TensorInfo& info = ckpt.info(name);
      OMNI_CHECK(info.shape == shape, dir, ": tensor \"", name, "\" has shape ", shape_str(info.shape),
                 ", expected ", shape_str(shape), " from config.json");
    }
    std::vector<std::string> unused;
    for (const std::string& name : ckpt.names())
      if (!expected.count(name)) unused.push_back(name);
    refuse_unused_tensors(dir, spec_, unused);
  }

  std::vector<uint8_t> loss_mask(int64_t B, int64_t T) const override {
    return last_token_mask(B, T);
  }

 private:
  DecoderSpec spec_;
  DecoderBlock block_;
};

}  // namespace

std::unique_ptr<QuantizableModel> make_decoder_quantizable(const DecoderSpec& spec) {
  return std::make_unique<DecoderQuantizable>(spec);
}

}  // namespace omni
