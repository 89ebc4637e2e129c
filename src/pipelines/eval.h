// Quality of a model on a text dataset, in llama.cpp's scoreboard terms: perplexity with its standard error and,
// against a reference model (usually the BF16 original), ΔPPL, mean KL divergence KL(P_ref ‖ P_model) per
// predicted token and "same top p" (how often both models' most likely next token agree).
//
// The dataset's samples are tokenized and joined with the separator token (<|endoftext|>) between them, and
// the stream is cut into non-overlapping windows of `ctx` tokens. Each window runs on its own (fresh KV cache);
// every token of a window except its first is predicted and scored, so a window gives ctx − 1 predictions.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/tokenizers/tokenizer.h"
#include "nn/causal_lm.h"

namespace omni {

struct EvalOptions {
  int64_t ctx = 512;        // tokens per window
  int64_t max_windows = 0;  // 0 = every full window of the stream
  int64_t max_tokens = 0;   // 0 = no limit; else only the stream's first max_tokens tokens are used
};

struct EvalResult {
  int64_t ctx = 0;
  int64_t windows = 0;
  int64_t tokens = 0;  // predicted (scored) tokens
  double seconds = 0;  // wall time of the forward passes and scoring

  double mean_nll = 0, mean_nll_stderr = 0;
  double ppl = 0, ppl_stderr = 0;  // ppl = exp(mean_nll); stderr by the delta method, as llama.cpp reports it

  bool has_reference = false;  // the fields below are valid only then
  double ref_ppl = 0, ref_ppl_stderr = 0;
  double delta_ppl = 0, delta_ppl_stderr = 0;  // ppl − ref_ppl; the stderr accounts for the two being correlated
  double mean_kld = 0, mean_kld_stderr = 0;
  double kld_max = 0, kld_p999 = 0, kld_p99 = 0, kld_median = 0;
  double same_top = 0, same_top_stderr = 0;  // fraction in [0, 1] of positions whose argmaxes agree
};

// Accumulates per-token statistics from logits; the model-free core of the evaluation (tests feed it logits
// computed elsewhere).
class QualityAccumulator {
 public:
  // `logits` (and `ref_logits` if given): F32 CPU [T, V] for the T tokens of `window`; row t predicts
  // window[t + 1], so T − 1 tokens are scored. Both accumulators must be used consistently: always or never
  // with a reference.
  void add_window(const Tensor& logits, const Tensor* ref_logits, std::span<const int32_t> window);
  // Statistics so far (seconds left 0: the caller times).
  EvalResult result() const;
  int64_t tokens() const { return count_; }

 private:
  int64_t count_ = 0;
  int64_t windows_ = 0;
  bool has_reference_ = false;
  // Sums over predicted tokens, in double.
  double nll_ = 0, nll2_ = 0;
  double ref_nll_ = 0, ref_nll2_ = 0, nll_ref_nll_ = 0;
  double kld_ = 0, kld2_ = 0;
  int64_t same_top_ = 0;
  std::vector<float> klds_;  // per token, for the percentiles
};

// Progress after each window: windows done, windows in all, statistics so far.
using EvalProgress = std::function<void(int64_t done, int64_t total, const EvalResult& so_far)>;

// Evaluates `model` (and compares with `reference` if not null) on the token stream `tokens`, window by window
// (memory stays at one window's logits per model). Fails if the stream (after max_tokens) is shorter than one
// window, or if the two models' vocabularies differ.
EvalResult evaluate_tokens(CausalLM& model, CausalLM* reference, std::span<const int32_t> tokens,
                           const EvalOptions& options, const EvalProgress& progress = {});

// The token stream of a dataset: each sample's ids, with the separator id (see text_separator_id) between
// consecutive samples.
std::vector<int32_t> tokenize_eval_stream(const Tokenizer& tokenizer, std::span<const std::string> samples);

}  // namespace omni
