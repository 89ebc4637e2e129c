#include "pipelines/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace omni {

GenerateStats generate(CausalLM& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                       const std::function<void(int32_t)>& on_token, std::vector<int32_t>* generated) {
  OMNI_CHECK(!prompt.empty(), "generate: the prompt encodes to zero tokens");
  OMNI_CHECK(options.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0");
  const int64_t ctx = model.info().max_positions;
  OMNI_CHECK(static_cast<int64_t>(prompt.size()) < ctx, "generate: the prompt has ", prompt.size(),
             " tokens; the model's context is ", ctx);
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };

  GenerateStats stats;
  stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  stats.stop_reason = "max tokens";
  if (generated) generated->clear();
  if (options.max_new_tokens == 0) return stats;

  // prompt + max_new_tokens may overflow (-n 2^63-1): compare against the room left instead of adding.
  OMNI_CHECK(options.max_new_tokens > 0, "generate: the number of new tokens must be positive, found ",
             options.max_new_tokens);
  const int64_t capacity =
      options.max_new_tokens >= ctx - stats.prompt_tokens ? ctx : stats.prompt_tokens + options.max_new_tokens;
  KvCache cache = model.new_cache(capacity);
  Sampler sampler(options.sampling);
  const auto is_stop = [&](int32_t id) {
    return std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end();
  };

  auto t0 = Clock::now();
  Tensor logits = model.forward(prompt, cache, /*all_logits=*/false);
  auto vocab = [&](const Tensor& l) {
    return std::span<const float>(l.data<float>(), static_cast<size_t>(l.dim(-1)));
  };
  int32_t next = sampler.sample(vocab(logits));
  stats.prefill_seconds = seconds(t0, Clock::now());

  auto t1 = Clock::now();
  for (;;) {
    ++stats.generated_tokens;
    if (generated) generated->push_back(next);
    on_token(next);
    if (is_stop(next)) {
      stats.stop_reason = "stop token";
      break;
    }
    if (stats.generated_tokens >= options.max_new_tokens) break;
    if (cache.length[0] >= cache.capacity) {
      stats.stop_reason = "context full";
      break;
    }
    logits = model.forward(std::span<const int32_t>(&next, 1), cache, false);
    next = sampler.sample(vocab(logits));
  }
  stats.decode_seconds = seconds(t1, Clock::now());
  return stats;
}

}  // namespace omni
