// Writes a quantised checkpoint directory in the auto_round format (packing auto_round:auto_gptq) or the
// auto_gptq format (quant_method "gptq", with g_idx), AUTOROUND.md §5:
//  * each quantised Linear <p> as <p>.qweight I32, <p>.qzeros I32 (zero − 1, GPTQ v1), <p>.scales F16,
//    <p>.g_idx I32 (auto_gptq only) and <p>.bias F16 when it has one; every other tensor unchanged;
//  * safetensors shards of at most max_shard_bytes (+ model.safetensors.index.json when sharded);
//  * config.json (the source's, plus "quantization_config"), quantization_config.json, and every other
//    non-weight file of the source directory (tokenizer, generation_config.json, ...).
// Everything is written into a temporary sibling directory that is renamed into place at the end, so the output
// appears complete or not at all.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backends/linear_weight.h"
#include "io/safetensors.h"
#include "quant/quant_config.h"

namespace omni {

enum class QuantizedCheckpointFormat { AutoRound, AutoGptq };
// Checks, before any work, that out_dir may receive a checkpoint made from source_dir: not empty; not the source,
// not inside it and not one of its ancestors (after resolving symlinks); when it exists, only with overwrite and
// only if it is an earlier output of ours (config.json and quantization_config.json, or a diffusers folder with
// transformer/quantization_config.json), so --overwrite never
// deletes a folder that omniround did not write. Errors name the path and the rule.
void check_export_target(const std::string& out_dir, const std::string& source_dir, bool overwrite);

// "auto_round" / "auto_gptq" (also "gptq"); error naming the accepted names otherwise.
QuantizedCheckpointFormat parse_quantized_checkpoint_format(const std::string& name);

struct QuantizedLinearOutput {
  std::string prefix;       // e.g. "model.layers.0.self_attn.q_proj" (no ".weight")
  GroupedIntWeight weight;  // its g_idx must be undefined: we write k / group_size
  Tensor bias;              // optional; written as F16
};

struct ExportOptions {
  QuantizedCheckpointFormat format = QuantizedCheckpointFormat::AutoRound;
  bool overwrite = false;  // replace an existing output directory (else it is an error)
  uint64_t max_shard_bytes = 5'000'000'000ull;
  std::string weights_stem = "model";  // STEM.safetensors (diffusers components: "diffusion_pytorch_model")
  // Called after each step ("wrote model.safetensors", ...); may throw to abort (the output then never appears).
  std::function<void(const std::string&)> progress;
};

// `cfg` carries bits / group_size / sym / block_name_to_quantize / extra_config / tuning values; the format
// fields (quant_method, packing_format, desc_act, ...) are set here from opts.format. Returns the written config.
QuantizationConfig export_quantized_checkpoint(const std::string& source_dir, const std::string& out_dir,
                                               const std::vector<NamedTensor>& unchanged,
                                               const std::vector<QuantizedLinearOutput>& quantized,
                                               QuantizationConfig cfg, const ExportOptions& opts = {});

}  // namespace omni
