// A batch of tokens from any number of sequences (llama.cpp's batch): each token names its sequence (a KV cache
// slot), its position in that sequence and whether its logits are wanted. A server mixes prompts and decode
// steps of many requests in one batch; a single prompt is the special case of one sequence.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace omni {

struct TokenBatch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> seq;      // KV cache slot of each token
  std::vector<int32_t> pos;      // position of each token in its sequence
  std::vector<uint8_t> output;   // 1: return this token's logits

  void add(int32_t token, int32_t sequence, int32_t position, bool wants_logits) {
    tokens.push_back(token);
    seq.push_back(sequence);
    pos.push_back(position);
    output.push_back(wants_logits ? 1 : 0);
  }
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }

  // `ids` of sequence `sequence` at positions start, start + 1, ...; logits for every token or the last one.
  static TokenBatch of_sequence(std::span<const int32_t> ids, int32_t sequence, int64_t start, bool all_logits) {
    TokenBatch b;
    for (size_t i = 0; i < ids.size(); ++i)
      b.add(ids[i], sequence, static_cast<int32_t>(start + static_cast<int64_t>(i)),
            all_logits || i + 1 == ids.size());
    return b;
  }
};

}  // namespace omni
