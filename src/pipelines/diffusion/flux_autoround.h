// AutoRound of the FLUX transformer of a diffusers pipeline folder (what `omniround quantize PIPELINE_DIR -o OUT`
// runs without --rtn): calibration from captions through the pipeline's own denoising loop (flux_calibration.h),
// then the text quantizer's block-by-block SignSGD tuning (pipelines/autoround: TuningContext, tune_block) over
// transformer_blocks.* and then single_transformer_blocks.* (nn/flux_quantizable.h), each block tuned on the
// outputs of the quantized blocks before it, the loss on both streams (image and text tokens), and the export of
// the quantized transformer in the same auto_round / auto_gptq layout as the RTN path, every other component
// copied, the output folder appearing complete or not at all (quantize_pipeline_folder.h).
//
// Resumable like the text quantizer: each finished block is saved to OUT.partial/ (block_state.h) with a
// fingerprint of the options, the transformer's config, the captions file and the calibration settings; a run
// with resume = true recaptures the calibration (deterministic), replays the finished blocks' forwards and
// continues with the next block.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "pipelines/autoround/autoround.h"
#include "pipelines/diffusion/flux_calibration.h"

namespace omni {

struct FluxAutoRoundOptions {
  // scheme, iters, lr, minmax_lr, batch_size, grad_accum, seed, enable_quanted_input, enable_minmax_tuning,
  // format, resume, overwrite as for text models; dataset: the captions file (one a line); nsamples: how many of
  // its captions are used (the first ones). seqlen and the text calibration policy are not used.
  AutoRoundOptions tuning;
  FluxCalibrationOptions calibration;
};

struct FluxAutoRoundSummary {
  AutoRoundSummary tuning;            // calibration_tokens: the image and text tokens of all cached samples
  std::vector<std::string> copied;    // top-level entries copied unchanged
  int64_t captions = 0, samples = 0;  // samples = captions × steps
};

// `backend` runs the calibration loop and the tuning (F32 activations: tuning is f32 by the backend contract).
FluxAutoRoundSummary quantize_pipeline_folder_autoround(const std::string& in_dir, const std::string& out_dir,
                                                        const FluxAutoRoundOptions& options,
                                                        const AutoRoundCallbacks& callbacks, Backend& backend);

}  // namespace omni
