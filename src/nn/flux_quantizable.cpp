#include "nn/flux_quantizable.h"

#include <map>
#include <set>

#include "core/error.h"
#include "nn/flux_blocks.h"

namespace omni {
namespace {

constexpr const char* kDoubleList = "transformer_blocks";
constexpr const char* kSingleList = "single_transformer_blocks";

class FluxQuantizable : public QuantizableModel {
 public:
  explicit FluxQuantizable(const FluxSpec& spec) : spec_(spec), double_(spec), single_(spec) {}

  const std::string& architecture() const override { return architecture_; }
  std::vector<std::string> block_lists() const override { return {kDoubleList, kSingleList}; }
  int64_t num_blocks() const override { return spec_.num_layers + spec_.num_single_layers; }
  // No position table: the rotary angles are computed from the latent grid, so no length is out of range.
  int64_t max_positions() const override { return int64_t{1} << 30; }
  std::string block_prefix(int64_t i) const override {
    check_index(i);
    return i < spec_.num_layers ? std::string(kDoubleList) + "." + std::to_string(i)
                                : std::string(kSingleList) + "." + std::to_string(i - spec_.num_layers);
  }
  const Block& block(int64_t i) const override {
    check_index(i);
    return i < spec_.num_layers ? static_cast<const Block&>(double_) : static_cast<const Block&>(single_);
  }

  NamedTensors calibration_inputs(const SafetensorsCheckpoint&, const std::vector<std::vector<int32_t>>&,
                                  Backend&) const override {
    OMNI_FAIL("the FLUX transformer is calibrated from the denoising loop of its pipeline folder, not from token "
              "ids (pipelines/diffusion/flux_calibration.h)");
  }

  // The blocks' tensors must all be there with their shapes, and no block past the config's counts; tensors
  // outside the blocks are the transformer loader's to check (it refuses unused ones too).
  void check_checkpoint(const SafetensorsCheckpoint& ckpt, const std::string& dir) const override {
    std::map<std::string, Shape> expected;
    for (int64_t b = 0; b < num_blocks(); ++b) {
      const std::string p = block_prefix(b) + ".";
      for (const ParamDesc& d : block(b).params()) expected[p + d.name] = d.shape;
      for (const LinearDesc& d : block(b).linears()) {
        expected[p + d.name + ".weight"] = {d.out_features, d.in_features};
        if (d.has_bias) expected[p + d.name + ".bias"] = {d.out_features};
      }
    }
    for (const auto& [name, shape] : expected) {
      OMNI_CHECK(ckpt.contains(name), dir, ": tensor \"", name, "\" is missing from the checkpoint (config.json: ",
                 spec_.num_layers, " double and ", spec_.num_single_layers, " single blocks, inner dim ",
                 spec_.inner_dim(), ")");
      const TensorInfo& info = ckpt.info(name);
      OMNI_CHECK(info.shape == shape, dir, ": tensor \"", name, "\" has shape ", shape_str(info.shape), ", expected ",
                 shape_str(shape), " from config.json");
    }
    for (const std::string& name : ckpt.names()) {
      const bool in_block = name.rfind(std::string(kDoubleList) + ".", 0) == 0 ||
                            name.rfind(std::string(kSingleList) + ".", 0) == 0;
      OMNI_CHECK(!in_block || expected.count(name), dir, ": tensor \"", name, "\" belongs to no block of config.json (",
                 spec_.num_layers, " double and ", spec_.num_single_layers, " single blocks)");
    }
  }

  std::vector<uint8_t> loss_mask(int64_t B, int64_t T) const override {
    return std::vector<uint8_t>(static_cast<size_t>(B * T), 1);
  }

 private:
  void check_index(int64_t i) const {
    OMNI_CHECK(i >= 0 && i < num_blocks(), "FLUX block index ", i, " out of range (", num_blocks(), " blocks)");
  }

  const std::string architecture_ = "FluxTransformer2DModel";
  FluxSpec spec_;
  FluxDoubleBlock double_;
  FluxSingleBlock single_;
};

}  // namespace

std::unique_ptr<QuantizableModel> make_flux_quantizable(const FluxSpec& spec) {
  return std::make_unique<FluxQuantizable>(spec);
}

}  // namespace omni
