// The per-block SignSGD loop of AUTOROUND.md §1 step 5, and the importance statistics of optimized RTN (§3).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "pipelines/autoround/autoround_options.h"
#include "pipelines/autoround/block_tuning_result.h"
#include "pipelines/autoround/tuning_context.h"

namespace omni {

// The mini-batch order shared with tools/autoround_reference.py (see src/core/rng.h): a seeded shuffled index
// list over the samples, reshuffled with the same generator when fewer than batch_size indices remain.
class BatchSampler {
 public:
  BatchSampler(int64_t samples, int64_t batch_size, uint64_t seed);
  std::vector<int64_t> next();

 private:
  SplitMix64 rng_;
  int64_t batch_;
  std::vector<int64_t> order_;
  int64_t pos_ = 0;
};

// Tunes V (and alpha/beta when enable_minmax_tuning) of every quantized Linear of the block in `ctx` so that
// block_q(inputs[batch]) matches targets[batch]: per iteration t, gradients of the masked MSE (summed over the
// block's outputs) accumulated over grad_accum micro-batches, a snapshot of the parameters when the loss is the
// lowest so far (taken before the update), then p ← p − lr·(1 − t/iters)·sign(∂L/∂p). On return the context holds
// the best snapshot. inputs: [n, T, ...] per io name, and [n, ...] per conditioning name of the block (FLUX's
// temb and rotary tables); targets: [n, T, ...] per io name; `mask(B, T)` says which rows of an output of T tokens
// count. `seed` fixes the mini-batch order. on_iter(t, loss, best) is called every iteration.
BlockTuningResult tune_block(TuningContext& ctx, const NamedTensors& inputs, const NamedTensors& targets,
                             const std::function<std::vector<uint8_t>(int64_t, int64_t)>& mask,
                             const AutoRoundOptions& options, uint64_t seed,
                             const std::function<void(int64_t, double, double)>& on_iter);

// imp[i][k] = mean over all calibration tokens of x_k² for the input x of Linear i (ctx.linears() order), from
// the FP block on `inputs` [n, T, ...].
std::vector<std::vector<float>> collect_linear_importance(TuningContext& ctx, const NamedTensors& inputs,
                                                          int64_t batch_size);

// Runs the block (in its current weight mode) over all samples, `batch` at a time: [n, T, ...] → [n, T, ...] per
// io name (with the conditioning tensors `inputs` holds).
NamedTensors block_forward_all(TuningContext& ctx, const NamedTensors& inputs, int64_t batch);

// Rows `idx` of [n, ...] tensors as new [idx.size(), ...] tensors.
Tensor gather_samples(const Tensor& all, const std::vector<int64_t>& idx);
NamedTensors gather_samples(const NamedTensors& all, const std::vector<int64_t>& idx);

}  // namespace omni
