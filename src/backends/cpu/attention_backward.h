// Grouped-query softmax attention for training, forward and backward as a pair. B sequences of length T at
// positions 0..T−1, no cache: query t of head h sees keys 0..t of kv head h / (Hq / Hkv) (causal, the default),
// or all T keys of its sequence (causal = false: a diffusion transformer's joint sequence).
//   q [B, T, Hq, hd], k and v [B, T, Hkv, hd], out [B, T, Hq, hd], scale 1/sqrt(hd).
//   forward:  P = softmax(scale · q·kᵀ) over the keys j it sees, out = P · v
//   backward: dv_j += P_tj · dout_t,  dP_tj = dout_t · v_j,  dS_tj = P_tj · (dP_tj − dout_t · out_t),
//             dq_t = scale · Σ_j dS_tj k_j,  dk_j += scale · dS_tj · q_t
// Saved activation: the log-sum-exp of each score row (lse [B, T, Hq]), not the probabilities: the backward
// recomputes P_tj = exp(scale · q_t·k_j − lse_t). That costs one more dot product per (t, j) but keeps memory at
// O(B·T·Hq) instead of O(B·Hq·T²) (2 GiB for 8 × 2048 tokens × 16 heads).
// T = double is a plain reference (one (query, key) pair at a time, as the inference kernel attention.cpp);
// T = float works on tiles of 96 queries with gemm_f32 products (scores, P·v, dP, dq, dk, dv), parallel over
// (sample, head) in the forward and (sample, kv head) in the backward, so dk/dv need no atomics.
#pragma once

#include <cstdint>

namespace omni {

template <class T>
void attention_forward_train(T* out, T* lse, const T* q, const T* k, const T* v, int64_t B, int64_t seq, int64_t Hq,
                             int64_t Hkv, int64_t hd, bool causal = true);

// Overwrites dq, dk, dv. `out` and `lse` are what the forward produced.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, int64_t B, int64_t seq, int64_t Hq, int64_t Hkv, int64_t hd,
                        bool causal = true);

}  // namespace omni
