// Host launchers of the CUDA backend's kernels: raw device pointers, sizes and the stream, no Tensor (the backend
// has validated shapes and dtypes). `act` is the activation dtype of the pointers typed void; statistics, training
// tensors and AutoRound parameters are f32. Every launcher checks its launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/fault.h"
#include "backends/qdq_formula.h"
#include "core/dtype.h"

namespace omni::cuda {

// ---- elementwise (elementwise.cu) ----
void launch_silu_mul(void* y, const void* gate, const void* up, int64_t n, DType act, cudaStream_t s);
void launch_add(void* y, const void* a, const void* b, int64_t n, DType act, cudaStream_t s);
// y[r, c] += bias[c] over rows × cols.
void launch_add_bias(void* y, const float* bias, int64_t rows, int64_t cols, DType act, cudaStream_t s);
// dst (dtype to) = src (dtype from), n elements.
void launch_convert(void* dst, DType to, const void* src, DType from, int64_t n, cudaStream_t s);
void launch_gelu_tanh(void* y, const void* x, int64_t n, DType act, cudaStream_t s);
// y[b, t, :] = x[b, t, :] · (1 + scale[b, :]) + shift[b, :], x [B, T, D].
void launch_modulate(void* y, const void* x, const void* scale, const void* shift, int64_t B, int64_t T, int64_t D,
                     DType act, cudaStream_t s);
void launch_fill(float* x, float value, int64_t n, cudaStream_t s);
void launch_clamp(float* x, float lo, float hi, int64_t n, cudaStream_t s);
void launch_sign_step(float* p, const float* g, float lr, int64_t n, cudaStream_t s);
void launch_silu_mul_backward(float* dgate, float* dup, const float* dy, const float* gate, const float* up,
                              int64_t n, cudaStream_t s);

// ---- rows (rows.cu) ----
// y[t, :] = table[ids[t], :] (table dtype `table_dtype`, V rows of D).
void launch_embedding(void* y, DType act, const int32_t* ids, int64_t T, const void* table, DType table_dtype,
                      int64_t V, int64_t D, DeviceFault* fault, cudaStream_t s);
// dst row index[i] = src row i, rows of row_bytes bytes, R rows in dst.
void launch_copy_rows(void* dst, const void* src, const int32_t* index, int64_t n, int64_t R, int64_t row_bytes,
                      DeviceFault* fault, cudaStream_t s);

// ---- normalisation (norm.cu) ----
// y = x · 1/sqrt(mean(x²) + eps) · weight per row of D; weight F32 or BF16; rstd (f32 [rows]) optional.
void launch_rms_norm(void* y, const void* x, DType act, const void* weight, DType weight_dtype, int64_t rows,
                     int64_t D, float eps, float* rstd, cudaStream_t s);
void launch_rms_norm_backward(float* dx, float* dweight, const float* dy, const float* x, const float* weight,
                              const float* rstd, int64_t rows, int64_t D, bool accumulate_dx, cudaStream_t s);
void launch_softmax(void* x, DType act, int64_t rows, int64_t D, cudaStream_t s);
// y = (x − mean)/sqrt(var + eps) per row of D, then · weight + bias when weight is given (F32 or BF16, both).
void launch_layer_norm(void* y, const void* x, DType act, const void* weight, const void* bias, DType affine_dtype,
                       int64_t rows, int64_t D, float eps, cudaStream_t s);
// sum = a + b (rounded to act), y = rms_norm(sum) per row of D; sum may alias a or b.
void launch_add_rms_norm(void* sum, void* y, const void* a, const void* b, DType act, const void* weight,
                         DType weight_dtype, int64_t rows, int64_t D, float eps, cudaStream_t s);
// y = rope(rms_norm(x)) per head of x [N, H, hd] (the norm rounded to act first); row n goes to y row
// rows[n] (of R) when rows is given, else to row n (y may alias x).
void launch_rms_norm_rope(void* y, const void* x, DType act, const void* weight, DType weight_dtype,
                          const int32_t* positions, const int32_t* rows, int64_t R, int64_t N, int64_t H, int64_t hd,
                          float eps, float theta, DeviceFault* fault, cudaStream_t s);
// In place on x [N, H, hd]; the inverse rotation with `inverse`.
void launch_rope(void* x, DType act, const int32_t* positions, int64_t N, int64_t H, int64_t hd, float theta,
                 bool inverse, DeviceFault* fault, cudaStream_t s);

// ---- attention (attention.cu) ----
struct AttentionShape {
  int64_t N, Hq, Hkv, hd, S, C;
  bool causal;  // rows see keys 0..position of their slot; else all C keys of it
};
// Attention of rows (slot, position) over k/v [S, C, Hkv, hd]; lse f32 [N, Hq] optional.
void launch_attention(void* out, const void* q, const void* k, const void* v, DType act, const int32_t* slot,
                      const int32_t* position, const AttentionShape& shape, float* lse, DeviceFault* fault,
                      cudaStream_t s);
// Inference attention (no lse) through the key-split kernel: the plan's blocks, and its scratch (f32, zero
// floats when not split) and counters (int [kAttentionCounters], all zero before the launch and after it).
constexpr int64_t kAttentionCounters = 4096;
struct AttentionSplitPlan {
  int splits = 1;      // key splits per (row, kv head, head batch)
  int64_t chunk = 0;   // keys per split
  int batches = 1;     // head batches per kv head (query heads of a group, up to 8 a block)
  int64_t units = 0;   // rows × kv heads × batches
};
AttentionSplitPlan plan_attention_split(const AttentionShape& shape, int sm_count);
int64_t attention_split_scratch_floats(const AttentionShape& shape, const AttentionSplitPlan& plan);
void launch_attention_split(void* out, const void* q, const void* k, const void* v, DType act, const int32_t* slot,
                            const int32_t* position, const AttentionShape& shape, const AttentionSplitPlan& plan,
                            float* scratch, int* counters, DeviceFault* fault, cudaStream_t s);
// Tensor-core inference attention (flash_attention.cu): BF16/F16 with head dims 64 and 128 (flash_attention_supported),
// no lse, any rows (one pass over the keys per distinct slot in a tile of query rows: fast when rows come in long
// runs of one sequence, as whole sequences and a single slot's prefill do). `variant` picks the kernel and tile
// shape: −1 the default (the wgmma kernel on sm_90, the mma.sync one, variant 0, elsewhere;
// OMNI_FLASH_ATTENTION_VARIANT=n in the environment forces variant n); the benchmark times every one of the
// flash_attention_variants of a head dim.
bool flash_attention_supported(DType act, int64_t hd);
void launch_flash_attention(void* out, const void* q, const void* k, const void* v, DType act, const int32_t* slot,
                            const int32_t* position, const AttentionShape& shape, DeviceFault* fault, cudaStream_t s,
                            int variant = -1);
int flash_attention_variants(int64_t hd);
int flash_attention_default_variant(int64_t hd);  // on the current device
const char* flash_attention_variant_name(int64_t hd, int variant);
// The training backward (f32, rows = slots × capacity in order). `delta` is f32 scratch [N, Hq].
void launch_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, const float* out, const float* lse, float* delta,
                               const AttentionShape& shape, cudaStream_t s);

// ---- loss (loss.cu) ----
// acc[0] += Σ over unmasked rows of Σ (y − ref)², acc (double [2]) [1] += number of unmasked rows.
void launch_masked_sq_error(double* acc, const float* y, const float* ref, const uint8_t* mask, int64_t rows,
                            int64_t D, cudaStream_t s);
// dy = c · (y − ref) on unmasked rows, 0 elsewhere.
void launch_masked_mse_grad(float* dy, const float* y, const float* ref, const uint8_t* mask, int64_t rows,
                            int64_t D, float c, cudaStream_t s);

// ---- AutoRound (fake_quant.cu): the formula of backends/qdq_formula.h ----
void launch_fake_quant(float* w_hat, const float* w, const float* v, const float* alpha, const float* beta,
                       int64_t N, int64_t K, const QuantScheme& scheme, cudaStream_t s);
void launch_fake_quant_backward(float* grad_v, float* grad_alpha, float* grad_beta, const float* grad_w_hat,
                                const float* w, const float* v, const float* alpha, const float* beta, int64_t N,
                                int64_t K, const QuantScheme& scheme, cudaStream_t s);

// ---- quantized weights (dequantize.cu) ----
// out [N, K] (dtype `out_dtype`) = scales[g(k), n] · (code(k, n) − zeros[g(k), n]) from the GPTQ layout of
// backends/linear_weight.h (any bits in {2, 3, 4, 8}): the fallback for weights the W4A16 kernels do not take.
void launch_dequantize_gptq(void* out, DType out_dtype, const int32_t* qweight, const uint16_t* scales_f16,
                            const uint8_t* zeros, const int32_t* g_idx, int bits, int64_t K, int64_t N,
                            int64_t group_size, cudaStream_t s);

// ---- diffusion transformer and text encoder elementwise ops (diffusion_ops.cu) ----
void launch_silu(void* y, const void* x, int64_t n, DType act, cudaStream_t s);
void launch_quick_gelu(void* y, const void* x, int64_t n, DType act, cudaStream_t s);
void launch_mul(void* y, const void* a, const void* b, int64_t n, DType act, cudaStream_t s);
// y[b, t, :] = x[b, t, :] + gate[b, :] · h[b, t, :], x [B, T, D].
void launch_gated_add(void* y, const void* x, const void* gate, const void* h, int64_t B, int64_t T, int64_t D,
                      DType act, cudaStream_t s);
// In place on x [N, H, hd]: pairs (2k, 2k+1) rotated by the f32 tables cos, sin [N, hd].
void launch_rope_interleaved(void* x, const float* cos, const float* sin, int64_t N, int64_t H, int64_t hd, DType act,
                             cudaStream_t s);

// ---- attention with an additive bias (attention_bias.cu) ----
// out [B, Lq, H, hd] = softmax(scale · q·kᵀ + bias) · v, k and v [B, Lk, H, hd], bias f32 [H, Lq, Lk] or (per
// sample) [B, H, Lq, Lk], or null (no bias: every key visible); a row whose keys are all −inf gives zeros.
void launch_attention_with_bias(void* out, const void* q, const void* k, const void* v, const float* bias, int64_t B,
                                int64_t Lq, int64_t Lk, int64_t H, int64_t hd, bool bias_per_sample, float scale,
                                DType act, cudaStream_t s);

// ---- image ops (image_ops.cu) ----
// The column matrix of conv2d for output rows r0 .. r0 + rows − 1 of `images` consecutive images of x [., Cin, H, W]:
// col [images, Cin·kh·kw, rows·Wo] (zero padding), in the activation dtype.
void launch_im2col(void* col, const void* x, DType act, int64_t images, int64_t Cin, int64_t H, int64_t W, int64_t kh,
                   int64_t kw, int64_t pad, int64_t Wo, int64_t r0, int64_t rows, cudaStream_t s);
// conv2d computed directly (f32 weights and sums) for Cout <= kMaxDirectCout; bias may be null.
constexpr int kMaxDirectCout = 8;
void launch_conv2d_direct(void* y, const void* x, DType act, const float* w, const float* bias, int64_t B, int64_t Cin,
                          int64_t H, int64_t W, int64_t Cout, int64_t kh, int64_t kw, int64_t pad, cudaStream_t s);
// y [B, Cout, P] = bias[co] in every position of channel co.
void launch_fill_channels(void* y, DType act, const float* bias, int64_t B, int64_t Cout, int64_t P, cudaStream_t s);
// GroupNorm of x [B, C, S] in G groups: per-slice statistics, merged per group in double, then y = x·a + s per
// channel. The plan fixes the slices; `scratch` holds scratch_floats f32.
struct GroupNormPlan {
  int64_t n = 0;       // values per group, (C / G) · S
  int64_t chunk = 0;   // values per statistics block
  int64_t splits = 1;  // statistics blocks per group
  int64_t scratch_floats = 0;
};
GroupNormPlan plan_group_norm(int64_t B, int64_t C, int64_t S, int64_t G);
void launch_group_norm(void* y, const void* x, DType act, int64_t B, int64_t C, int64_t S, int64_t G, float eps,
                       const float* weight, const float* bias, const GroupNormPlan& plan, float* scratch,
                       cudaStream_t s);
// y [planes, 2H, 2W] = x [planes, H, W] repeated 2×2; bits copied (elements of elem_size bytes).
void launch_upsample_nearest2x(void* y, const void* x, size_t elem_size, int64_t planes, int64_t H, int64_t W,
                               cudaStream_t s);
// y [batch, N, M] = x [batch, M, N] transposed; bits copied.
void launch_transpose_last2(void* y, const void* x, size_t elem_size, int64_t batch, int64_t M, int64_t N,
                            cudaStream_t s);

}  // namespace omni::cuda
