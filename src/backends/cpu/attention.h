// Grouped-query attention (causal, or over the whole joint sequence) for inference, f32, one query row at a time against a KV cache of sequence
// slots. Query head h reads key/value head h / (Hq / Hkv).
#pragma once

#include <cstdint>

namespace omni {

// q, out [N, Hq, hd]; k, v [S, C, Hkv, hd] (S slots of capacity C). Row n attends to keys 0..position[n] of
// slot slot[n] when causal, else to all C keys of it (slot and position checked against S and C). Scores are
// scaled by 1/sqrt(hd); softmax subtracts the row max.
void attention_forward_rows(float* out, const float* q, const float* k, const float* v, int64_t N, int64_t Hq,
                            int64_t Hkv, int64_t hd, int64_t S, int64_t C, const int32_t* slot,
                            const int32_t* position, bool causal = true);

}  // namespace omni
