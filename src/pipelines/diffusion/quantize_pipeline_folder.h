// `omniround quantize` of a diffusers pipeline folder (model_index.json at its root): the transformer component
// is quantized into the output folder, in the auto_round format that diffusers + auto-round and vLLM-Omni read
// (its quantization_config in transformer/config.json, block_name_to_quantize
// "transformer_blocks,single_transformer_blocks"), and every other component (text encoders, VAE, tokenizers,
// scheduler, model_index.json) is copied unchanged. The output appears complete or not at all.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "quant/rtn_checkpoint.h"

namespace omni {

// Whether dir is a diffusers pipeline folder (has model_index.json).
bool is_pipeline_folder(const std::string& dir);

struct PipelineQuantizeSummary {
  RtnSummary transformer;
  std::vector<std::string> copied;  // top-level entries copied unchanged
};

// Errors, naming model_index.json's field, unless in_dir's transformer is a FluxTransformer2DModel in transformer/.
void check_flux_pipeline_folder(const std::string& in_dir);

// Writes the output pipeline folder out_dir atomically (it appears complete or not at all; an existing one is
// replaced only after check_export_target allowed it): write_transformer(dir) writes the quantized transformer
// into dir (a path that does not exist yet), and every other top-level entry of in_dir is copied unchanged.
// Returns the names of the copied entries.
std::vector<std::string> write_quantized_pipeline_folder(const std::string& in_dir, const std::string& out_dir,
                                                         const std::function<void(const std::string&)>& write_transformer,
                                                         const std::function<void(const std::string&)>& progress);

// Round-to-nearest (AUTOROUND.md §3) of the FLUX transformer; opts.block_names, linear_names and weights_stem are
// filled in here. Refuses a pipeline whose transformer is not a FluxTransformer2DModel, naming the field.
PipelineQuantizeSummary quantize_pipeline_folder_rtn(const std::string& in_dir, const std::string& out_dir,
                                                     RtnOptions opts);

}  // namespace omni
