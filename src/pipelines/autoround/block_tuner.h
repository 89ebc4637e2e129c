// The per-block SignSGD loop of AUTOROUND.md §1 step 5, and the importance statistics of optimized RTN (§3).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "models/qwen3/qwen3_block_trainer.h"
#include "pipelines/autoround/autoround_options.h"

namespace omni {

struct BlockTuningResult {
  double initial_loss = 0;  // loss of the first mini-batch at V = 0, alpha = beta = 1
  double best_loss = 0;
  int64_t best_iter = 0;
};

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

// Tunes V (and alpha/beta when enable_minmax_tuning) of every quantized Linear of `block` so that
// block_q(inputs[batch]) matches targets[batch]: per iteration t, gradients of the masked MSE accumulated over
// grad_accum micro-batches, a snapshot of the parameters when the loss is the lowest so far (taken before the
// update), then p ← p − lr·(1 − t/iters)·sign(∂L/∂p). On return the block holds the best snapshot.
// inputs, targets: [n, T, D]. `seed` fixes the mini-batch order. on_iter(t, loss, best) is called every iteration.
BlockTuningResult tune_block(Qwen3BlockTrainer& block, const Tensor& inputs, const Tensor& targets,
                             const AutoRoundOptions& options, uint64_t seed,
                             const std::function<void(int64_t, double, double)>& on_iter);

// imp[i][k] = mean over all calibration tokens of x_k² for the input x of Linear i (qwen3::kBlockLinears order),
// from the FP block on `inputs` [n, T, D].
std::vector<std::vector<float>> collect_linear_importance(Qwen3BlockTrainer& block, const Tensor& inputs,
                                                          int64_t batch_size);

// Runs the block (in its current weight mode) over all samples, `batch` at a time: [n, T, D] → [n, T, D].
Tensor block_forward_all(Qwen3BlockTrainer& block, const Tensor& inputs, int64_t batch);

// Rows `idx` of a [n, T, D] tensor as a new [idx.size(), T, D] tensor.
Tensor gather_samples(const Tensor& all, const std::vector<int64_t>& idx);

}  // namespace omni
