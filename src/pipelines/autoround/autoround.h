// The AutoRound quantizer (AUTOROUND.md §1): calibrate, then tune block by block with signed gradient descent
// on the rounding offsets V and the clipping scales alpha/beta of every Linear, freeze the best snapshot, and
// export an auto_round / auto_gptq checkpoint. OptimizedRtn searches the scales against an importance matrix
// collected from the calibration data (§3). Plain RTN needs no model run: quantize_rtn_model (below).
//
// Resumable: after each block its frozen result is written atomically to OUT_DIR.partial/; a run restarted with
// resume = true reloads the finished blocks, recomputes the calibration chains through them (forward passes
// only) and continues with the next block, producing the same bytes as an uninterrupted run (same options,
// same number of threads).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "pipelines/autoround/autoround_options.h"
#include "pipelines/autoround/block_tuning_result.h"
#include "quant/quant_config.h"
#include "quant/rtn_checkpoint.h"

namespace omni {

struct BlockTuningReport {
  int64_t block = 0;
  BlockTuningResult tuning;
  double seconds = 0;
  bool resumed = false;     // loaded from OUT_DIR.partial instead of tuned in this run
};

struct AutoRoundSummary {
  std::vector<BlockTuningReport> blocks;
  QuantizationConfig config;          // as written
  int64_t calibration_tokens = 0;
  double seconds = 0;
  std::vector<std::string> skipped;   // Linears kept 16-bit because of their shape
};

struct AutoRoundCallbacks {
  std::function<void(const std::string&)> log;                // one line per event
  std::function<void(const AutoRoundProgress&)> progress;     // frequent: every iteration
};

AutoRoundSummary autoround_quantize(const std::string& model_dir, const std::string& out_dir,
                                    const AutoRoundOptions& options, const AutoRoundCallbacks& callbacks = {},
                                    Backend* backend = nullptr);  // null: the CPU backend

// Model-free RTN of the checkpoint in model_dir: the architecture (from the registry) names the block lists and
// the Linears to quantize; everything else in `options` is used as given.
RtnSummary quantize_rtn_model(const std::string& model_dir, const std::string& out_dir, RtnOptions options);

}  // namespace omni
