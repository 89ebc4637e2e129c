// Interleaved rotary embedding (GPT-J / FLUX layout, backend.h rope_interleaved) for training: pairs (2k, 2k+1)
// of each head of x [N, H, hd] rotated by the tables cos, sin [N, hd]:
//   forward:  y0 = x0 c0 − x1 s0,   y1 = x1 c1 + x0 s1          (c = cos[2k], cos[2k+1]; s likewise)
//   backward: dx0 = dy0 c0 + dy1 s1,  dx1 = dy1 c1 − dy0 s0      (the transposed rotation: the inverse one when
//                                                                 cos[2k] = cos[2k+1] and sin likewise)
// Both in place.
#pragma once

#include <cstdint>

namespace omni {

template <class T>
void rope_interleaved_forward_train(T* x, const T* cos, const T* sin, int64_t N, int64_t H, int64_t hd);

template <class T>
void rope_interleaved_backward(T* dx, const T* cos, const T* sin, int64_t N, int64_t H, int64_t hd);

}  // namespace omni
