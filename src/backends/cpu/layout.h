// Data-movement kernels on raw elements of any size (bits copied, nothing converted): the transpose of the last
// two dims (NCHW image planes to token rows and back) and nearest-neighbour ×2 upsampling.
#pragma once

#include <cstddef>
#include <cstdint>

namespace omni {

// y [batch, N, M] = transposeᵀ of x [batch, M, N]; elements of elem_size bytes (1, 2, 4 or 8). y must not
// overlap x.
void transpose_last2(void* y, const void* x, size_t elem_size, int64_t batch, int64_t M, int64_t N);
// y [planes, 2H, 2W] with y[p, i, j] = x[p, i / 2, j / 2], x [planes, H, W].
void upsample_nearest2x_forward(void* y, const void* x, size_t elem_size, int64_t planes, int64_t H, int64_t W);

}  // namespace omni
