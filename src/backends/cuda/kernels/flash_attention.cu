// Tensor-core attention forward for long runs of query rows (FLUX's joint sequences, prefill, whole sequences in
// inference), BF16 and F16, head dims 64 and 128, no lse: the FlashAttention-2 scheme, in two kernels.
//
// Both take one block per (tile of BM consecutive query rows, query head) and stream key/value tiles of BN rows
// through shared memory (cp.async, double-buffered), with the softmax online (running max and sum per row, in
// registers), P rounded to the activation dtype as the second product's operand and O divided by the sum once at
// the end:
// - flash_attention_kernel (here, any sm_80+ GPU): WARPS warps of MI m16 row tiles each; S = Q·Kᵀ and O += P·V on
//   mma.sync m16n8k16 with f32 accumulators, operands through ldmatrix from row-XOR-swizzled tiles.
// - flash_attention_wgmma_kernel (flash_attention_wgmma.cuh, sm_90a): a warpgroup per 64 rows, both products on
//   wgmma; 1.5x faster on an H200, the default there.
//
// Rows are general (slot, position) pairs read from device memory, so nothing is read back on the host and a
// recorded launch stays valid: a block runs one pass over the keys per distinct slot among its rows (one pass
// when the tile lies in one sequence, two where whole sequences meet inside a tile), each pass masking the rows
// of other slots. A pass sweeps keys 0..max visible key of its rows; tiles past the smallest row limit (the causal
// diagonal, a partial last tile) are masked per element, and keys past the pass's last visible key are loaded as
// zeros (cache cells nobody wrote may hold NaN, and 0·NaN would reach the output). Rows with a slot or position
// outside the cache report a device fault, like the other attention kernels. Causal grids start with the tiles
// late in a sequence, which have the most keys.
#include <climits>
#include <cmath>
#include <cstdlib>
#include <iterator>

#include "backends/cuda/kernels/flash_attention_common.cuh"
#include "backends/cuda/kernels/flash_attention_wgmma.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace flash {

// ---- the mma.sync kernel (any sm_80+ part) ----

// HD head dim, MI m16 row tiles per warp, BN keys per tile, WARPS warps, QREG: Q fragments kept in registers for
// the whole block (else re-read from shared memory at each key tile, trading shared-memory bandwidth for registers).
template <class T, int HD, int MI, int BN, int WARPS, bool QREG>
struct FlashConfig {
  static constexpr int kBM = WARPS * 16 * MI;
  static constexpr int kCH = HD / 8;  // 16-byte chunks per row
  static constexpr int kThreads = WARPS * 32;
  static constexpr int kQBytes = kBM * HD * 2;
  static constexpr int kKVBytes = BN * HD * 2;  // one K or V stage
  static constexpr int kSmem = kQBytes + 4 * kKVBytes + 2 * kBM * 4;
};

template <class T, int HD, int MI, int BN, int WARPS, bool QREG>
__global__ void __launch_bounds__(WARPS * 32) flash_attention_kernel(FlashArgs a) {
  using Cfg = FlashConfig<T, HD, MI, BN, WARPS, QREG>;
  constexpr int BM = Cfg::kBM, CH = Cfg::kCH, NT = Cfg::kThreads;
  constexpr int KS = HD / 16;  // k-steps of the first product
  constexpr int NB = BN / 8;   // n tiles of S
  constexpr int DT = HD / 8;   // n tiles of O
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* q_s = smem;
  unsigned char* kv_s = smem + Cfg::kQBytes;  // K stage 0, K stage 1, V stage 0, V stage 1
  int* row_slot = reinterpret_cast<int*>(kv_s + 4 * Cfg::kKVBytes);
  int* row_lim = row_slot + BM;
  const uint32_t q_base = smem_addr(q_s), kv_base = smem_addr(kv_s);

  const AttentionShape& sh = a.sh;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // Causal tiles late in a sequence have the most keys: start them first.
  const int64_t tile = sh.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t i0 = tile * BM, h = blockIdx.y, hk = h / (sh.Hq / sh.Hkv);
  const T* q = static_cast<const T*>(a.q);
  const T* kg = static_cast<const T*>(a.k);
  const T* vg = static_cast<const T*>(a.v);

  load_rows<BM, NT>(a, i0, h, row_slot, row_lim);
  // Q tile → shared memory (rows past N zero).
  for (int c = tid; c < BM * CH; c += NT) {
    const int r = c / CH, ch = c % CH;
    const int64_t i = i0 + r;
    const bool ok = i < sh.N;
    cp_async16(q_base + swz<CH>(r, ch), q + ((ok ? i : 0) * sh.Hq + h) * HD + ch * 8, ok);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  // ldmatrix lane roles. A operand (Q): rows lane%8 (+8 for lanes 8-15, 24-31), chunk +1 for lanes 16-31.
  const int a_row = (lane % 8) + ((lane / 8) % 2) * 8, a_chunk = lane / 16;
  // B operand of S (K rows, non-transposed): keys lane%8 (+8 for lanes 16-31), chunk +1 for lanes 8-15, 24-31.
  const int k_row = (lane % 8) + (lane / 16) * 8, k_chunk = (lane / 8) % 2;
  // B operand of O (V rows, transposed): keys lane%8 (+8 for lanes 8-15, 24-31), chunk +1 for lanes 16-31.
  const int v_row = a_row, v_chunk = a_chunk;
  const int g = lane / 4, t4 = lane % 4;  // accumulator fragment: rows g, g+8; columns 2·t4, 2·t4+1

  uint32_t qf[QREG ? MI : 1][QREG ? KS : 1][4];
  if constexpr (QREG) {
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
      for (int kk = 0; kk < KS; ++kk)
        ldsm_x4(qf[mi][kk], q_base + swz<CH>(warp * 16 * MI + mi * 16 + a_row, kk * 2 + a_chunk));
  }

  float o[MI][DT][4];
  float m[MI][2], l[MI][2];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
    for (int d = 0; d < DT; ++d)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mi][d][e] = 0.f;
    m[mi][0] = m[mi][1] = -INFINITY;
    l[mi][0] = l[mi][1] = 0.f;
  }

  const int64_t kv_stride = sh.Hkv * HD;  // elements between consecutive positions
  Pass ps;
  for (int done = -1; next_pass<BM>(row_slot, row_lim, done, ps); done = ps.slot) {
    int lim[MI][2];  // this thread's rows: last visible key in this pass (−1: none)
#pragma unroll
    for (int mi = 0; mi < MI; ++mi)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int r = warp * 16 * MI + mi * 16 + g + hh * 8;
        lim[mi][hh] = row_slot[r] == ps.slot ? row_lim[r] : -1;
      }
    const T* k0 = kg + (static_cast<int64_t>(ps.slot) * sh.C * sh.Hkv + hk) * HD;
    const T* v0 = vg + (static_cast<int64_t>(ps.slot) * sh.C * sh.Hkv + hk) * HD;
    const int tiles = ps.kmax / BN + 1, kmax = ps.kmax;
    auto load_kv = [&](int kt, int stage) {
      const uint32_t kb = kv_base + stage * Cfg::kKVBytes, vb = kv_base + (2 + stage) * Cfg::kKVBytes;
      for (int c = tid; c < BN * CH; c += NT) {
        const int r = c / CH, ch = c % CH;
        const int j = kt * BN + r;
        const bool ok = j <= kmax;
        const int64_t off = (ok ? j : 0) * kv_stride + ch * 8;
        cp_async16(kb + swz<CH>(r, ch), k0 + off, ok);
        cp_async16(vb + swz<CH>(r, ch), v0 + off, ok);
      }
    };
    load_kv(0, 0);
    cp_async_commit();
    for (int kt = 0; kt < tiles; ++kt) {
      const int stage = kt & 1;
      if (kt + 1 < tiles) load_kv(kt + 1, stage ^ 1);
      cp_async_commit();  // possibly empty: keeps the group count uniform
      cp_async_wait<1>();
      __syncthreads();
      const uint32_t kb = kv_base + stage * Cfg::kKVBytes, vb = kv_base + (2 + stage) * Cfg::kKVBytes;

      // S = Q · Kᵀ for this warp's rows and the tile's BN keys.
      float s[MI][NB][4];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int n = 0; n < NB; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mi][n][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        uint32_t af[MI][4];
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) {
          if constexpr (QREG) {
#pragma unroll
            for (int e = 0; e < 4; ++e) af[mi][e] = qf[mi][kk][e];
          } else {
            ldsm_x4(af[mi], q_base + swz<CH>(warp * 16 * MI + mi * 16 + a_row, kk * 2 + a_chunk));
          }
        }
#pragma unroll
        for (int nb = 0; nb < BN / 16; ++nb) {
          uint32_t b[4];
          ldsm_x4(b, kb + swz<CH>(nb * 16 + k_row, kk * 2 + k_chunk));
#pragma unroll
          for (int mi = 0; mi < MI; ++mi) {
            mma16816<T>(s[mi][2 * nb], af[mi], b[0], b[1]);
            mma16816<T>(s[mi][2 * nb + 1], af[mi], b[2], b[3]);
          }
        }
      }

      // Mask (where some key of the tile lies past some row's limit), the online softmax, O rescaled.
      const int j0 = kt * BN;
      const bool masked = !ps.all || j0 + BN - 1 > ps.kmin;
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
        float corr[2];
        softmax_tile<NB>(s[mi], m[mi], l[mi], corr, lim[mi], masked, j0, t4, a.scale_log2);
#pragma unroll
        for (int d = 0; d < DT; ++d)
#pragma unroll
          for (int e = 0; e < 4; ++e) o[mi][d][e] *= corr[e / 2];
      }

      // O += P · V.
#pragma unroll
      for (int kb16 = 0; kb16 < BN / 16; ++kb16) {
        uint32_t pf[MI][4];
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) p_fragment<T, NB>(pf[mi], s[mi], kb16);
#pragma unroll
        for (int db = 0; db < HD / 16; ++db) {
          uint32_t b[4];
          ldsm_x4_trans(b, vb + swz<CH>(kb16 * 16 + v_row, db * 2 + v_chunk));
#pragma unroll
          for (int mi = 0; mi < MI; ++mi) {
            mma16816<T>(o[mi][2 * db], pf[mi], b[0], b[1]);
            mma16816<T>(o[mi][2 * db + 1], pf[mi], b[2], b[3]);
          }
        }
      }
      __syncthreads();  // the stage just read is the next prefetch's target
    }
  }

  // O / l → shared memory (the Q tile's space, free now) → 16-byte stores of the real rows. The barrier covers a
  // tile with no pass (every row bad), where another warp may still be reading its Q fragments.
  __syncthreads();
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float sum = l[mi][hh];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
      const int r = warp * 16 * MI + mi * 16 + g + hh * 8;
#pragma unroll
      for (int d = 0; d < DT; ++d) {
        const uint32_t packed = pack2<T>(o[mi][d][2 * hh] * inv, o[mi][d][2 * hh + 1] * inv);
        *reinterpret_cast<uint32_t*>(q_s + swz<CH>(r, d) + t4 * 4) = packed;
      }
    }
  __syncthreads();
  T* out = static_cast<T*>(a.out);
  for (int c = tid; c < BM * CH; c += NT) {
    const int r = c / CH, ch = c % CH;
    const int64_t i = i0 + r;
    if (i < sh.N && row_slot[r] >= 0)
      *reinterpret_cast<uint4*>(out + (i * sh.Hq + h) * HD + ch * 8) =
          *reinterpret_cast<const uint4*>(q_s + swz<CH>(r, ch));
  }
}

}  // namespace flash
namespace {

using namespace flash;

// Whether the current device is an sm_90 part (Hopper), where the wgmma kernels run.
bool device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  OMNI_CUDA(cudaGetDevice(&dev));
  OMNI_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  OMNI_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return major == 9 && minor == 0;
}

template <class Kernel>
void launch_kernel(Kernel* kernel, int64_t bm, int threads, int smem, const FlashArgs& args, cudaStream_t s) {
  // Above 48 KB a kernel needs its dynamic shared-memory limit raised (per device: set at every launch, a host call
  // that records nothing in a capture).
  OMNI_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int64_t tiles = (args.sh.N + bm - 1) / bm;
  OMNI_CHECK(tiles < (int64_t{1} << 31) && args.sh.Hq <= 65535, "attention: too many rows or heads for the ",
             "flash kernel: ", args.sh.N, " rows × ", args.sh.Hq, " heads");
  kernel<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(args.sh.Hq)), threads, smem, s>>>(args);
  check_launch("flash_attention_kernel");
}

template <class T, int HD, int MI, int BN, int WARPS, bool QREG>
void launch_mma(const FlashArgs& args, cudaStream_t s) {
  using Cfg = FlashConfig<T, HD, MI, BN, WARPS, QREG>;
  launch_kernel(flash_attention_kernel<T, HD, MI, BN, WARPS, QREG>, Cfg::kBM, Cfg::kThreads, Cfg::kSmem, args, s);
}

template <class T, int HD, int BN, int NWG, int MINB, bool PIPE>
void launch_wgmma(const FlashArgs& args, cudaStream_t s) {
  using Cfg = WgmmaConfig<HD, BN, NWG, PIPE>;
  launch_kernel(flash_attention_wgmma_kernel<T, HD, BN, NWG, MINB, PIPE>, Cfg::kBM, Cfg::kThreads, Cfg::kSmem, args,
                s);
}

// The kernels and tile shapes per head dim; default_variant() picks what the backend uses, the benchmark times all.
struct Variant {
  const char* name;
  bool sm90;  // a wgmma kernel
  void (*bf16)(const FlashArgs&, cudaStream_t);
  void (*f16)(const FlashArgs&, cudaStream_t);
};
#define OMNI_FLASH_MMA(NAME, HD, MI, BN, W, QREG) \
  Variant { NAME, false, launch_mma<__nv_bfloat16, HD, MI, BN, W, QREG>, launch_mma<__half, HD, MI, BN, W, QREG> }
#define OMNI_FLASH_WGMMA(NAME, HD, BN, NWG, MINB, PIPE)                                                         \
  Variant {                                                                                                     \
    NAME, true, launch_wgmma<__nv_bfloat16, HD, BN, NWG, MINB, PIPE>, launch_wgmma<__half, HD, BN, NWG, MINB, PIPE> \
  }
// Variant 0 of each head dim is the mma.sync kernel, the fallback where the GPU is not sm_90. The others are the
// wgmma kernel's shapes that the benchmark compares (docs/benchmarks/cuda_flash_attention.md).
const Variant kVariants128[] = {
    OMNI_FLASH_MMA("mma.sync BM=64 BN=64 4 warps, Q in registers", 128, 1, 64, 4, true),
    OMNI_FLASH_WGMMA("wgmma BM=128 BN=64 2 warpgroups", 128, 64, 2, 1, false),
    OMNI_FLASH_WGMMA("wgmma BM=64 BN=64 1 warpgroup", 128, 64, 1, 1, false),
    OMNI_FLASH_WGMMA("wgmma BM=128 BN=128 2 warpgroups", 128, 128, 2, 1, false),
    OMNI_FLASH_WGMMA("wgmma BM=128 BN=64 2 warpgroups, 2 blocks/SM", 128, 64, 2, 2, false),
    OMNI_FLASH_WGMMA("wgmma BM=128 BN=128 2 warpgroups, pipelined", 128, 128, 2, 1, true),
};
const Variant kVariants64[] = {
    OMNI_FLASH_MMA("mma.sync BM=64 BN=64 4 warps, Q in registers", 64, 1, 64, 4, true),
    OMNI_FLASH_WGMMA("wgmma BM=128 BN=64 2 warpgroups, 2 blocks/SM", 64, 64, 2, 2, false),
    OMNI_FLASH_WGMMA("wgmma BM=64 BN=64 1 warpgroup", 64, 64, 1, 1, false),
    OMNI_FLASH_WGMMA("wgmma BM=64 BN=64 1 warpgroup, 4 blocks/SM", 64, 64, 1, 4, false),
};
#undef OMNI_FLASH_MMA
#undef OMNI_FLASH_WGMMA

const Variant* variants(int64_t hd, int* count) {
  if (hd == 128) {
    *count = static_cast<int>(std::size(kVariants128));
    return kVariants128;
  }
  if (hd == 64) {
    *count = static_cast<int>(std::size(kVariants64));
    return kVariants64;
  }
  *count = 0;
  return nullptr;
}

// What the backend runs on sm_90, the fastest measured on an H200 (docs/benchmarks/cuda_flash_attention.md): four
// warpgroups per multiprocessor in both. Elsewhere variant 0 (mma.sync).
constexpr int kDefaultSm90_128 = 4, kDefaultSm90_64 = 3;

// The variant the backend runs; OMNI_FLASH_ATTENTION_VARIANT in the environment overrides it (read once; for A/B
// runs of the tests and models against the benchmark's other variants; a number past a head dim's variants leaves
// that head dim on its default).
int default_variant(int64_t hd) {
  static const int forced = [] {
    const char* e = std::getenv("OMNI_FLASH_ATTENTION_VARIANT");
    return e ? std::atoi(e) : -1;
  }();
  int n = 0;
  variants(hd, &n);
  if (forced >= 0 && forced < n) return forced;
  return device_is_sm90() ? (hd == 128 ? kDefaultSm90_128 : kDefaultSm90_64) : 0;
}

}  // namespace

bool flash_attention_supported(DType act, int64_t hd) {
  return (act == DType::BF16 || act == DType::F16) && (hd == 64 || hd == 128);
}

int flash_attention_variants(int64_t hd) {
  int n = 0;
  variants(hd, &n);
  return n;
}

int flash_attention_default_variant(int64_t hd) { return default_variant(hd); }

const char* flash_attention_variant_name(int64_t hd, int variant) {
  int n = 0;
  const Variant* v = variants(hd, &n);
  OMNI_CHECK(variant >= 0 && variant < n, "flash attention: no variant ", variant, " for head dim ", hd);
  return v[variant].name;
}

void launch_flash_attention(void* out, const void* q, const void* k, const void* v, DType act, const int32_t* slot,
                            const int32_t* position, const AttentionShape& sh, DeviceFault* fault, cudaStream_t s,
                            int variant) {
  if (variant < 0) variant = default_variant(sh.hd);
  OMNI_CHECK(flash_attention_supported(act, sh.hd), "attention: the flash kernel takes BF16/F16 and head dims 64 ",
             "and 128, found ", dtype_name(act), " and ", sh.hd);
  OMNI_CHECK(sh.C <= INT_MAX && sh.Hkv > 0 && sh.Hq % sh.Hkv == 0, "attention: bad shape for the flash kernel");
  if (sh.N == 0) return;
  int n = 0;
  const Variant* vs = variants(sh.hd, &n);
  OMNI_CHECK(variant >= 0 && variant < n, "flash attention: no variant ", variant, " for head dim ", sh.hd);
  OMNI_CHECK(!vs[variant].sm90 || device_is_sm90(), "attention: flash variant ", variant, " (",
             vs[variant].name, ") needs an sm_90 GPU");
  const FlashArgs args{out, q, k, v, slot, position, sh, 1.4426950408889634f / std::sqrt(static_cast<float>(sh.hd)),
                       fault};
  (act == DType::BF16 ? vs[variant].bf16 : vs[variant].f16)(args, s);
}

}  // namespace omni::cuda
