#include "nn/causal_lm.h"

#include "core/error.h"

namespace omni {

Tensor CausalLM::forward(std::span<const int32_t> ids, KvCache& cache, bool all_logits,
                         std::vector<Tensor>* hidden_states, int32_t slot) {
  OMNI_CHECK(slot >= 0 && slot < cache.slots(), "forward: slot ", slot, " is not in the cache's ", cache.slots(),
             " slots");
  const TokenBatch batch = TokenBatch::of_sequence(ids, slot, cache.length[static_cast<size_t>(slot)], all_logits);
  return forward(batch, cache, hidden_states);
}

}  // namespace omni
