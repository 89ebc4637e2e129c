#include "pipelines/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/thread_pool.h"
#include "pipelines/calibration_samples.h"

namespace omni {
namespace {

// What one predicted position contributes.
struct TokenScore {
  double nll = 0;
  double ref_nll = 0;
  double kld = 0;
  bool same_top = false;
};

struct RowSoftmax {
  double log_sum_exp = 0;
  int64_t argmax = 0;
};

// log Σ exp(x) over a row, with the max subtracted first so nothing overflows; also the row's argmax (first
// one on ties). When `exps` is given it receives exp(x_i − max).
RowSoftmax row_softmax(const float* x, int64_t n, double* exps) {
  int64_t arg = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[arg]) arg = i;
  const double max = x[arg];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = std::exp(static_cast<double>(x[i]) - max);
    if (exps) exps[i] = e;
    sum += e;
  }
  return {max + std::log(sum), arg};
}

void check_logits(const Tensor& logits, int64_t rows, const char* what) {
  OMNI_CHECK(logits.device() == Device::CPU && logits.dtype() == DType::F32 && logits.ndim() == 2,
             what, " logits must be F32 CPU [T, V], got ", shape_str(logits.shape()));
  OMNI_CHECK(logits.dim(0) == rows, what, " logits have ", logits.dim(0), " rows for a window of ", rows, " tokens");
}

// Standard error of a mean from the sums of x and x² over n values (sample variance, n − 1).
double stderr_of_mean(double sum, double sum2, int64_t n) {
  if (n < 2) return 0;
  const double mean = sum / static_cast<double>(n);
  const double var = std::max(0.0, sum2 / static_cast<double>(n) - mean * mean);
  return std::sqrt(var / static_cast<double>(n - 1));
}

// Linear interpolation between the closest ranks of sorted values, q in [0, 1].
double quantile_sorted(const std::vector<float>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return static_cast<double>(sorted[lo]) * (1 - frac) + static_cast<double>(sorted[hi]) * frac;
}

}  // namespace

void QualityAccumulator::add_window(const Tensor& logits, const Tensor* ref_logits,
                                    std::span<const int32_t> window) {
  const int64_t T = static_cast<int64_t>(window.size());
  OMNI_CHECK(T >= 2, "an evaluation window needs at least 2 tokens, got ", T);
  check_logits(logits, T, "model");
  const int64_t V = logits.dim(1);
  if (ref_logits) {
    check_logits(*ref_logits, T, "reference");
    OMNI_CHECK(ref_logits->dim(1) == V, "the reference model has ", ref_logits->dim(1),
               " logits per token but the model has ", V, "; they must share a vocabulary");
  }
  OMNI_CHECK(windows_ == 0 || has_reference_ == (ref_logits != nullptr),
             "every evaluation window must be scored with a reference, or none");
  has_reference_ = ref_logits != nullptr;
  for (int64_t t = 1; t < T; ++t)
    OMNI_CHECK(window[t] >= 0 && window[t] < V, "token id ", window[t], " at window position ", t,
               " is outside the model's vocabulary of ", V);

  const float* x = logits.data<float>();
  const float* r = ref_logits ? ref_logits->data<float>() : nullptr;
  std::vector<TokenScore> scores(static_cast<size_t>(T - 1));
  parallel_for(0, T - 1, 8, [&](int64_t lo, int64_t hi) {
    std::vector<double> ref_exps(r ? static_cast<size_t>(V) : 0);
    for (int64_t t = lo; t < hi; ++t) {
      const float* xt = x + t * V;
      const int64_t target = window[t + 1];
      const RowSoftmax q = row_softmax(xt, V, nullptr);
      TokenScore& s = scores[static_cast<size_t>(t)];
      s.nll = q.log_sum_exp - xt[target];
      if (!r) continue;
      const float* rt = r + t * V;
      const RowSoftmax p = row_softmax(rt, V, ref_exps.data());
      s.ref_nll = p.log_sum_exp - rt[target];
      // KL(P‖Q) = Σ p_i (log p_i − log q_i) = Σ p_i (r_i − x_i) + (lse_x − lse_r), with p_i = e_i / Σ e; written
      // this way identical logits give exactly 0 and tiny p_i cannot produce 0 · log 0.
      double weighted = 0, total = 0;
      for (int64_t i = 0; i < V; ++i) {
        weighted += ref_exps[static_cast<size_t>(i)] * (static_cast<double>(rt[i]) - static_cast<double>(xt[i]));
        total += ref_exps[static_cast<size_t>(i)];
      }
      s.kld = weighted / total + (q.log_sum_exp - p.log_sum_exp);
      s.same_top = q.argmax == p.argmax;
    }
  });

  // Serial, in order, so the sums do not depend on the thread count.
  for (const TokenScore& s : scores) {
    nll_ += s.nll;
    nll2_ += s.nll * s.nll;
    if (!r) continue;
    ref_nll_ += s.ref_nll;
    ref_nll2_ += s.ref_nll * s.ref_nll;
    nll_ref_nll_ += s.nll * s.ref_nll;
    kld_ += s.kld;
    kld2_ += s.kld * s.kld;
    same_top_ += s.same_top ? 1 : 0;
    klds_.push_back(static_cast<float>(s.kld));
  }
  count_ += T - 1;
  ++windows_;
}

EvalResult QualityAccumulator::result() const {
  EvalResult res;
  res.windows = windows_;
  res.tokens = count_;
  if (count_ == 0) return res;
  const double n = static_cast<double>(count_);
  res.mean_nll = nll_ / n;
  res.mean_nll_stderr = stderr_of_mean(nll_, nll2_, count_);
  res.ppl = std::exp(res.mean_nll);
  res.ppl_stderr = res.ppl * res.mean_nll_stderr;
  res.has_reference = has_reference_;
  if (!has_reference_) return res;

  const double ref_mean = ref_nll_ / n;
  const double ref_se = stderr_of_mean(ref_nll_, ref_nll2_, count_);
  res.ref_ppl = std::exp(ref_mean);
  res.ref_ppl_stderr = res.ref_ppl * ref_se;
  res.delta_ppl = res.ppl - res.ref_ppl;
  // Var(ppl − ref_ppl) by the delta method: the two NLL means are strongly correlated (same tokens), so the
  // difference is known much better than either value.
  const double cov_of_means =
      count_ > 1 ? (nll_ref_nll_ / n - res.mean_nll * ref_mean) / static_cast<double>(count_ - 1) : 0;
  const double var = res.ppl * res.ppl * res.mean_nll_stderr * res.mean_nll_stderr +
                     res.ref_ppl * res.ref_ppl * ref_se * ref_se - 2 * res.ppl * res.ref_ppl * cov_of_means;
  res.delta_ppl_stderr = std::sqrt(std::max(0.0, var));

  res.mean_kld = kld_ / n;
  res.mean_kld_stderr = stderr_of_mean(kld_, kld2_, count_);
  std::vector<float> sorted = klds_;
  std::sort(sorted.begin(), sorted.end());
  res.kld_max = sorted.back();
  res.kld_p999 = quantile_sorted(sorted, 0.999);
  res.kld_p99 = quantile_sorted(sorted, 0.99);
  res.kld_median = quantile_sorted(sorted, 0.5);
  res.same_top = static_cast<double>(same_top_) / n;
  res.same_top_stderr = count_ > 1 ? std::sqrt(res.same_top * (1 - res.same_top) / static_cast<double>(count_ - 1)) : 0;
  return res;
}

EvalResult evaluate_tokens(CausalLM& model, CausalLM* reference, std::span<const int32_t> tokens,
                           const EvalOptions& options, const EvalProgress& progress) {
  OMNI_CHECK(options.ctx >= 2, "evaluation context must be at least 2 tokens, got ", options.ctx);
  OMNI_CHECK(options.max_windows >= 0 && options.max_tokens >= 0, "max windows / tokens must not be negative");
  if (reference)
    OMNI_CHECK(reference->info().vocab_size == model.info().vocab_size, "the reference model's vocabulary (",
               reference->info().vocab_size, ") differs from the model's (", model.info().vocab_size, ")");
  int64_t available = static_cast<int64_t>(tokens.size());
  if (options.max_tokens > 0) available = std::min(available, options.max_tokens);
  int64_t windows = available / options.ctx;
  OMNI_CHECK(windows > 0, "the dataset gives ", available, " tokens",
             options.max_tokens > 0 && available == options.max_tokens ? " (after the max-tokens limit)" : "",
             ", fewer than one evaluation window of ", options.ctx, " tokens; lower the context or use more text");
  if (options.max_windows > 0) windows = std::min(windows, options.max_windows);

  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  QualityAccumulator acc;
  for (int64_t w = 0; w < windows; ++w) {
    const std::span<const int32_t> window = tokens.subspan(static_cast<size_t>(w * options.ctx),
                                                           static_cast<size_t>(options.ctx));
    KvCache cache = model.new_cache(options.ctx);
    const Tensor logits = model.forward(window, cache, /*all_logits=*/true);
    Tensor ref_logits;
    if (reference) {
      KvCache ref_cache = reference->new_cache(options.ctx);
      ref_logits = reference->forward(window, ref_cache, /*all_logits=*/true);
    }
    acc.add_window(logits, reference ? &ref_logits : nullptr, window);
    if (progress) {
      EvalResult so_far = acc.result();
      so_far.ctx = options.ctx;
      so_far.seconds = elapsed();
      progress(w + 1, windows, so_far);
    }
  }
  EvalResult res = acc.result();
  res.ctx = options.ctx;
  res.seconds = elapsed();
  return res;
}

std::vector<int32_t> tokenize_eval_stream(const Tokenizer& tokenizer, std::span<const std::string> samples) {
  const int32_t separator = text_separator_id(tokenizer);
  std::vector<int32_t> stream;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (i > 0) stream.push_back(separator);
    const std::vector<int32_t> ids = tokenizer.encode(samples[i]);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  return stream;
}

}  // namespace omni
