// Model-free RTN (AUTOROUND.md §3): stream the tensors of a 16-bit checkpoint one by one, quantise every Linear
// weight inside the blocks, keep everything else, and export an auto_round / auto_gptq checkpoint. No model is
// built and no calibration data is needed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "quant/export.h"
#include "quant/qdq.h"

namespace omni {

struct RtnOptions {
  QuantScheme scheme;                                    // default W4, group 128, full-range symmetric
  // The architecture's block lists and its blocks' Linear names (from the model's QuantizableModel): a tensor
  // "<block>.<i>.<...>.<linear>.weight" is quantized when its module name ends in one of linear_names.
  std::vector<std::string> block_names;
  std::vector<std::string> linear_names;
  QuantizedCheckpointFormat format = QuantizedCheckpointFormat::AutoRound;
  bool overwrite = false;
  uint64_t max_shard_bytes = 5'000'000'000ull;
  std::string weights_stem = "model";  // STEM*.safetensors in and out ("diffusion_pytorch_model" for diffusers)
  std::function<void(const std::string&)> progress;  // log lines; may be empty
};

struct RtnSummary {
  std::vector<std::string> quantized;  // Linear names (no ".weight")
  std::vector<std::string> skipped;    // left 16-bit because of their shape (recorded in extra_config)
  QuantizationConfig config;           // as written
};

RtnSummary quantize_rtn_checkpoint(const std::string& in_dir, const std::string& out_dir, const RtnOptions& opts);

}  // namespace omni
