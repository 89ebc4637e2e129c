#include "pipelines/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace omni {

Sampler::Sampler(SamplingParams params) : params_(params), rng_(params.seed) {
  OMNI_CHECK(params.top_k >= 0, "sampling: top_k must be >= 0 (0 = off), found ", params.top_k);
  OMNI_CHECK(params.top_p > 0.0f && params.top_p <= 1.0f, "sampling: top_p must be in (0, 1], found ", params.top_p);
  OMNI_CHECK(!std::isnan(params.temperature), "sampling: temperature is NaN");
}

int32_t argmax_logit(std::span<const float> logits) {
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  OMNI_CHECK(best >= 0, "sampling: no logits, or every logit is NaN (", logits.size(), " logits)");
  return best;
}

int32_t Sampler::sample(std::span<const float> logits) {
  OMNI_CHECK(!logits.empty(), "sampling: empty logits");
  if (params_.temperature <= 0.0f || params_.top_k == 1) return argmax_logit(logits);

  const int64_t V = static_cast<int64_t>(logits.size());
  auto before = [&](int32_t a, int32_t b) {  // higher logit first, lower index on ties
    const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  order_.resize(static_cast<size_t>(V));
  std::iota(order_.begin(), order_.end(), 0);
  // NaN logits are never candidates.
  order_.erase(std::remove_if(order_.begin(), order_.end(),
                              [&](int32_t i) { return std::isnan(logits[static_cast<size_t>(i)]); }),
               order_.end());
  OMNI_CHECK(!order_.empty(), "sampling: every logit is NaN");
  const bool use_top_k = params_.top_k > 0 && params_.top_k < static_cast<int64_t>(order_.size());
  const bool use_top_p = params_.top_p < 1.0f;
  if (use_top_k) {
    std::nth_element(order_.begin(), order_.begin() + params_.top_k - 1, order_.end(), before);
    order_.resize(static_cast<size_t>(params_.top_k));
  }
  // Sorting is needed only for the nucleus; the plain draw walks candidates in any fixed order.
  if (use_top_p) std::sort(order_.begin(), order_.end(), before);
  else std::sort(order_.begin(), order_.end());

  float max_logit = -INFINITY;
  for (int32_t i : order_) max_logit = std::max(max_logit, logits[static_cast<size_t>(i)]);
  const double inv_t = 1.0 / static_cast<double>(params_.temperature);
  probs_.resize(order_.size());
  double total = 0.0;
  for (size_t c = 0; c < order_.size(); ++c) {
    probs_[c] = std::exp((static_cast<double>(logits[static_cast<size_t>(order_[c])]) - max_logit) * inv_t);
    total += probs_[c];
  }
  size_t keep = order_.size();
  if (use_top_p) {  // smallest prefix whose probability reaches top_p, at least one token
    const double target = static_cast<double>(params_.top_p) * total;
    double cum = 0.0;
    for (size_t c = 0; c < order_.size(); ++c) {
      cum += probs_[c];
      if (cum >= target) {
        keep = c + 1;
        break;
      }
    }
    total = std::accumulate(probs_.begin(), probs_.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
  }
  const double u = static_cast<double>(rng_() >> 11) * 0x1p-53;  // uniform in [0, 1)
  const double threshold = u * total;
  double cum = 0.0;
  for (size_t c = 0; c < keep; ++c) {
    cum += probs_[c];
    if (threshold < cum) return order_[c];
  }
  return order_[keep - 1];  // rounding left u·total at the very top
}

}  // namespace omni
