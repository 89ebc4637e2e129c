// The tuner's view of an architecture (AUTOROUND.md §1, §4): its blocks in order, each a Block definition with
// its checkpoint prefix, how calibration samples become the first block's inputs, and which rows count in the
// block loss. pipelines/autoround works only through this, so it never learns a model's name.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "io/safetensors.h"
#include "nn/block.h"

namespace omni {

class QuantizableModel {
 public:
  virtual ~QuantizableModel() = default;
  virtual const std::string& architecture() const = 0;
  // The checkpoint's block lists in order (quantization_config.block_name_to_quantize).
  virtual std::vector<std::string> block_lists() const = 0;
  virtual int64_t num_blocks() const = 0;
  // The longest sequence the model was made for (max_position_embeddings).
  virtual int64_t max_positions() const = 0;
  // "model.layers.3": the prefix of block i's tensors (its Linears and params are named relative to it).
  virtual std::string block_prefix(int64_t i) const = 0;
  virtual const Block& block(int64_t i) const = 0;
  // Block 0's inputs for n calibration samples of T tokens: CPU F32 tensors [n, T, ...] by the block's io names.
  virtual NamedTensors calibration_inputs(const SafetensorsCheckpoint& ckpt,
                                          const std::vector<std::vector<int32_t>>& samples,
                                          Backend& backend) const = 0;
  // Errors, naming the directory and the tensors, when the checkpoint is not this model's: a tensor it expects is
  // missing or has another shape, or one it would not read is there (blocks past num_hidden_layers, a stray
  // name). Quantizers check this before writing, so a config that disagrees with its checkpoint never becomes an
  // output that looks fine (the inference loader refuses the same checkpoints).
  virtual void check_checkpoint(const SafetensorsCheckpoint& ckpt, const std::string& dir) const = 0;
  // Which of the B·T rows of a micro-batch count in the block loss (1) and which do not (0).
  virtual std::vector<uint8_t> loss_mask(int64_t B, int64_t T) const = 0;
};

}  // namespace omni
