// Row gathers and scatters: the embedding lookup and the KV-cache write. Indices are checked on the device;
// a bad one is recorded in the fault word and its row left unwritten.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

// One block per token row.
template <class T, class Table>
__global__ void embedding_kernel(T* y, const int32_t* ids, const Table* table, int64_t V, int64_t D,
                                 DeviceFault* fault) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  if (id < 0 || id >= V) {
    if (threadIdx.x == 0) report_fault(fault, FaultCode::EmbeddingId, t, id, V);
    return;
  }
  const Table* src = table + static_cast<int64_t>(id) * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) y[t * D + d] = from_f32<T>(to_f32(src[d]));
}

// One block per source row; words of `Word` bytes.
template <class Word>
__global__ void copy_rows_kernel(Word* dst, const Word* src, const int32_t* index, int64_t R, int64_t words,
                                 DeviceFault* fault) {
  const int64_t i = blockIdx.x;
  const int32_t r = index[i];
  if (r < 0 || r >= R) {
    if (threadIdx.x == 0) report_fault(fault, FaultCode::CopyRowsIndex, i, r, R);
    return;
  }
  for (int64_t w = threadIdx.x; w < words; w += blockDim.x) dst[r * words + w] = src[i * words + w];
}

unsigned rows_grid(int64_t rows) {
  OMNI_CHECK(rows < (int64_t{1} << 31), "too many rows for one launch: ", rows);
  return static_cast<unsigned>(rows);
}

}  // namespace

void launch_embedding(void* y, DType act, const int32_t* ids, int64_t T, const void* table, DType table_dtype,
                      int64_t V, int64_t D, DeviceFault* fault, cudaStream_t s) {
  if (T == 0) return;
  dispatch_float(act, "embedding", [&](auto out_tag) {
    dispatch_float(table_dtype, "embedding", [&](auto table_tag) {
      using Out = decltype(out_tag);
      using Table = decltype(table_tag);
      embedding_kernel<<<rows_grid(T), 256, 0, s>>>(static_cast<Out*>(y), ids, static_cast<const Table*>(table), V,
                                                    D, fault);
    });
  });
  check_launch("embedding_kernel");
}

void launch_copy_rows(void* dst, const void* src, const int32_t* index, int64_t n, int64_t R, int64_t row_bytes,
                      DeviceFault* fault, cudaStream_t s) {
  if (n == 0) return;
  const auto aligned = [&](size_t a) {
    return row_bytes % static_cast<int64_t>(a) == 0 && reinterpret_cast<uintptr_t>(dst) % a == 0 &&
           reinterpret_cast<uintptr_t>(src) % a == 0;
  };
  if (aligned(16))
    copy_rows_kernel<<<rows_grid(n), 128, 0, s>>>(static_cast<int4*>(dst), static_cast<const int4*>(src), index, R,
                                                  row_bytes / 16, fault);
  else if (aligned(4))
    copy_rows_kernel<<<rows_grid(n), 128, 0, s>>>(static_cast<int32_t*>(dst), static_cast<const int32_t*>(src),
                                                  index, R, row_bytes / 4, fault);
  else
    copy_rows_kernel<<<rows_grid(n), 128, 0, s>>>(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src),
                                                  index, R, row_bytes, fault);
  check_launch("copy_rows_kernel");
}

}  // namespace omni::cuda
