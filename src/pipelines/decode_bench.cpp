#include "pipelines/decode_bench.h"

#include <algorithm>
#include <random>

#include "core/error.h"
#include "pipelines/generate.h"

namespace omni {

double DecodeBenchResult::median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

DecodeBenchResult bench_decode(CausalLM& model, const DecodeBenchOptions& o) {
  OMNI_CHECK(o.prompt_tokens >= 1, "bench decode: --prompt-tokens must be at least 1, found ", o.prompt_tokens);
  OMNI_CHECK(o.decode_tokens >= 1, "bench decode: --tokens must be at least 1, found ", o.decode_tokens);
  OMNI_CHECK(o.repeats >= 1, "bench decode: --repeat must be at least 1, found ", o.repeats);
  const CausalLmInfo& info = model.info();
  // prompt + tokens + 1 <= limit, compared without the sum (it can overflow on huge options). A model that
  // states no context still gets a bound, so the KV cache size stays sane.
  const int64_t limit = info.max_positions > 0 ? info.max_positions : int64_t{1} << 24;
  OMNI_CHECK(o.prompt_tokens < limit && o.decode_tokens < limit - o.prompt_tokens, "bench decode: ",
             o.prompt_tokens, " prompt + ", o.decode_tokens, " + 1 generated tokens exceed the ",
             info.max_positions > 0 ? "model's context" : "limit", " of ", limit);

  DecodeBenchResult r;
  r.weight_bytes_per_token = model.load_report().linear_weight_bytes;
  {  // keys and values of every layer per position; a step at context c reads c of them
    const KvCache probe = model.new_cache(1);
    int64_t per_position = 0;
    for (size_t l = 0; l < probe.k.size(); ++l)
      per_position += static_cast<int64_t>(probe.k[l].nbytes() + probe.v[l].nbytes());  // capacity 1
    // Step i (1-based) of the timed decode attends over prompt_tokens + i positions.
    r.kv_bytes_per_token = per_position * (o.prompt_tokens + (o.decode_tokens + 1) / 2);
  }

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(info.vocab_size - 1));
  GenerateOptions g;
  g.max_new_tokens = o.decode_tokens + 1;  // the first is sampled by the prefill; decode_tokens steps follow
  for (int run = 0; run <= o.repeats; ++run) {
    std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_tokens));
    for (auto& id : prompt) id = token(rng);
    const GenerateStats s = generate(model, prompt, g, [](int32_t) {});
    OMNI_CHECK(s.generated_tokens == g.max_new_tokens, "bench decode: generation stopped after ",
               s.generated_tokens, " tokens (", s.stop_reason, ")");
    if (run == 0) continue;  // warm-up: first touch of weights and caches, allocator pools
    r.prefill_tokens_per_second.push_back(s.prefill_tokens_per_second());
    r.decode_tokens_per_second.push_back(s.decode_tokens_per_second());
  }
  return r;
}

}  // namespace omni
