// Options of the AutoRound quantizer (AUTOROUND.md §1, §3): defaults are the reference's.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "quant/export.h"
#include "quant/qdq.h"

namespace omni {

enum class QuantMethod { AutoRound, OptimizedRtn };
const char* quant_method_name(QuantMethod m);  // "autoround", "rtn-opt"

struct AutoRoundOptions {
  QuantMethod method = QuantMethod::AutoRound;
  QuantScheme scheme;           // W4, group 128, full-range symmetric
  int64_t iters = 200;          // > 0 for AutoRound (RTN is quantize_rtn_model)
  double lr = 0;                // 0: 1 / iters
  double minmax_lr = 0;         // 0: lr
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  int64_t batch_size = 8;
  int64_t grad_accum = 1;       // gradient_accumulate_steps
  uint64_t seed = 42;
  bool enable_quanted_input = true;   // tune block i on the outputs of the quantized blocks 0..i-1
  bool enable_minmax_tuning = true;   // tune alpha/beta as well as V
  std::string dataset;                // text or JSONL file
  std::string calibration_policy = "concat";  // concat, skip, stream or chat (calibration_samples.h)
  std::string calib_tokens;  // pre-tokenized windows (JSONL "input_ids"); when set, replaces dataset and policy
  QuantizedCheckpointFormat format = QuantizedCheckpointFormat::AutoRound;
  bool resume = false;     // continue an interrupted run from OUT_DIR.partial
  bool overwrite = false;  // replace an existing OUT_DIR

  double effective_lr() const { return lr > 0 ? lr : 1.0 / static_cast<double>(iters > 0 ? iters : 1); }
  double effective_minmax_lr() const { return minmax_lr > 0 ? minmax_lr : effective_lr(); }
  // Applies a named recipe: "light" (iters 50, lr 5e-3), "default" (200), "best" (iters 1000, nsamples 512).
  void apply_recipe(const std::string& name);
};

// What the quantizer reports while it runs (for a live progress line).
struct AutoRoundProgress {
  int64_t block = 0, blocks = 0;
  int64_t iter = 0, iters = 0;
  double loss = 0, best_loss = 0;
  double elapsed_seconds = 0, eta_seconds = 0;
};

}  // namespace omni
