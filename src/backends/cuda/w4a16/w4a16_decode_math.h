// The index arithmetic and register-level formulas of the decode kernel (w4a16_decode.cu), shared with the host
// model of that kernel in tests/backends/cuda/w4a16_repack_test.cu: the model runs the kernel's algorithm step for
// step on the CPU (mma.sync's fragment layout written there from the PTX ISA), so that how the work is cut, where x
// is staged, how a weight word becomes A fragments and how partial sums are reduced is checked against an F64
// reference on machines without a GPU too. C++17, no CUDA headers.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/hd.h"

namespace omni::cuda::w4dec {

inline constexpr int kWarps = 8;
inline constexpr int kThreads = kWarps * 32;
inline constexpr int kChunkTiles = 8;  // k16 tiles per chunk: 128 inputs, 4 KB of codes per warp
inline constexpr int kChunkInputs = 16 * kChunkTiles;
inline constexpr int kMaxCluster = 8;  // portable cluster size

struct Span {
  int begin = 0, end = 0;
};

// The K chunks [begin, end) of warp `warp` of block `rank` in a cluster of cs blocks (nch chunks along K); every
// warp keeps the same range in every round. The union over a block's warps is block_chunks.
OMNI_HD inline Span warp_chunks(int rank, int warp, int cs, int nch) {
  const int64_t Q = static_cast<int64_t>(cs) * kWarps, q = static_cast<int64_t>(rank) * kWarps + warp;
  return {static_cast<int>(q * nch / Q), static_cast<int>((q + 1) * nch / Q)};
}
OMNI_HD inline Span block_chunks(int rank, int cs, int nch) {
  return {static_cast<int>(static_cast<int64_t>(rank) * nch / cs),
          static_cast<int>(static_cast<int64_t>(rank + 1) * nch / cs)};
}
// Rounds of cluster cid: it owns strips cid, cid + clusters, ...
OMNI_HD inline int cluster_rounds(int cid, int strips, int clusters) {
  return cid < strips ? (strips - cid + clusters - 1) / clusters : 0;
}

// x in shared memory, in B-fragment order: the 32-bit word (register reg of n8 tile nb) of lane `lane` for the
// block's k16 tile u. B fragment of m16n8k16 (16 inputs x 8 rows of M): lane 4g + t holds row g, inputs 2t, 2t+1
// (reg 0) and 2t + 8, 2t + 9 (reg 1).
OMNI_HD inline int x_word(int u, int lane, int nb, int reg, int NB) { return ((u * 32 + lane) * NB + nb) * 2 + reg; }
// Staging item i of a block whose range starts at k16 tile bt0 (per_row = 8 pairs x the block's tiles): row of x,
// first input of the pair, destination word.
struct XItem {
  int row, k, word;
};
OMNI_HD inline XItem x_item(int i, int per_row, int bt0, int NB) {
  const int row = i / per_row, rem = i - row * per_row, u = rem >> 3, pr = rem & 7;
  return {row, (bt0 + u) * 16 + 2 * pr, x_word(u, 4 * (row & 7) + (pr & 3), row >> 3, pr >> 2, NB)};
}

// Accumulators in shared memory: element (n16 slice j, n8 tile nb, C register e, lane). C of m16n8k16 with the
// weight as A: lane 4g + t holds columns 16j + g (e = 0, 1) and 16j + 8 + g (e = 2, 3), rows 2t and 2t + 1 (e even,
// odd) of n8 tile nb.
OMNI_HD inline int acc_index(int j, int nb, int e, int lane, int NB) { return ((j * NB + nb) * 4 + e) * 32 + lane; }
OMNI_HD inline int acc_row(int idx, int NB) {
  const int e = (idx >> 5) & 3, nb = (idx >> 7) % NB;
  return nb * 8 + 2 * (idx & 3) + (e & 1);
}
// The element of (row of M, column col = 0..63 of the strip).
OMNI_HD inline int acc_index_of(int row, int col, int NB) {
  const int j = col >> 4, hh = (col >> 3) & 1, g = col & 7, nb = row >> 3, t = (row & 7) >> 1;
  return acc_index(j, nb, 2 * hh + (row & 1), 4 * g + t, NB);
}

// A fragment register r (a0..a3) of n16 slice j from word j of the lane's 16-byte vector (w4a16_layout.h): the
// shift that brings its nibble pair to bits 0..3 and 16..19 (a0: nibbles 0/4, a1: 2/6, a2: 1/5, a3: 3/7), and
// the scale/zero position of its column (a0, a2: column 16j + c; a1, a3: 16j + 8 + c).
OMNI_HD constexpr int a_shift(int r) { return r == 0 ? 0 : r == 1 ? 8 : r == 2 ? 4 : 12; }
OMNI_HD constexpr int a_position(int j, int r) { return 2 * j + (r & 1); }
// (q & 0x000f000f) | magic: one lop3 on the device; magic + code in both 16-bit halves.
OMNI_HD inline uint32_t mask_magic(uint32_t q, uint32_t magic) { return (q & 0x000f000fu) | magic; }

// Magic offsets: bf16 128.0 (0x4300), f16 1024.0 (0x6400); magic + 15 is exact in both.
OMNI_HD constexpr uint32_t magic2(bool bf16) { return bf16 ? 0x43004300u : 0x64006400u; }
OMNI_HD constexpr uint32_t magic_bytes(bool bf16) { return bf16 ? 0x43434343u : 0x64646464u; }
OMNI_HD constexpr float magic_value(bool bf16) { return bf16 ? 128.f : 1024.f; }
// (magic + 8) in both halves: the symmetric zero point as the unfolded kernel subtracts it.
OMNI_HD constexpr uint32_t magic_plus_8(bool bf16) { return (magic2(bf16) & 0xff00ff00u) | 0x00080008u; }
// prmt.b32 selector: byte j of the first operand into bytes 0 and 2, byte 0 of the second into bytes 1 and 3.
OMNI_HD constexpr uint32_t dup_byte_selector(int j) {
  return static_cast<uint32_t>(j) | 0x40u | (static_cast<uint32_t>(j) << 8) | 0x4000u;
}
// Zero point (0..15) at position pos of a zero word; the scale's f16 bits at position pos of a scale vector.
OMNI_HD inline uint32_t zero_at(uint32_t zw, int pos) { return (zw >> (4 * pos)) & 0xfu; }
OMNI_HD inline uint16_t scale_bits_at(const uint32_t (&sv)[4], int pos) {
  return static_cast<uint16_t>(sv[pos >> 1] >> (16 * (pos & 1)));
}

// Flush of one accumulator element (F32). Folded: tmp = sum((m + q) x), xr = sum(x) over the flushed inputs,
// zf = m + z. Unfolded: tmp = sum((q - z) x).
OMNI_HD inline float flush_folded(float acc, float scale, float zf, float xr, float tmp) {
  return fmaf(scale, fmaf(-zf, xr, tmp), acc);
}
OMNI_HD inline float flush_plain(float acc, float scale, float tmp) { return fmaf(scale, tmp, acc); }

// Global offsets: the weight's 16-byte vector of (strip s, chunk c, tile p of the chunk, lane); the scale vector
// (uint16 units) and zero word of group g, strip s, lane set lc (= lane / 4).
OMNI_HD inline size_t weight_index(int s, int c, int p, int lane, int k_tiles) {
  return (static_cast<size_t>(s) * k_tiles + static_cast<size_t>(c) * kChunkTiles + p) * 32 + lane;
}
OMNI_HD inline size_t scale_offset(int g, int N, int s, int lc) {
  return static_cast<size_t>(g) * N + static_cast<size_t>(s) * 64 + lc * 8;
}
OMNI_HD inline size_t zero_offset(int g, int N, int s, int lc) {
  return static_cast<size_t>(g) * (N / 8) + static_cast<size_t>(s) * 8 + lc;
}
// First input of flush i (of kGT tiles each) of chunk c.
OMNI_HD inline int flush_k0(int c, int i, int kGT) { return c * kChunkInputs + i * kGT * 16; }
// kGT = 8 (group >= 128): whether chunk c closes its group (or the warp's range).
OMNI_HD inline bool chunk_closes_group(int c, bool last_in_range, int group_shift) {
  return last_in_range || ((c * kChunkInputs) >> group_shift) != (((c + 1) * kChunkInputs) >> group_shift);
}

// Shared memory of a block: x in fragment order (block_tiles tiles), the warps' partial sums [warp][512 NB], the
// block's sums [2 rounds][512 NB] and the sums of x per row and 32 inputs [block_tiles / 2][8 NB] (folded variant;
// its kGT = 8 instances use one per 128 inputs).
OMNI_HD constexpr size_t smem_x_bytes(int block_tiles, int NB) { return static_cast<size_t>(block_tiles) * 32 * NB * 8; }
OMNI_HD constexpr size_t smem_bytes(int block_tiles, int NB) {
  return smem_x_bytes(block_tiles, NB) + static_cast<size_t>(kWarps) * 512 * NB * 4 + size_t{2} * 512 * NB * 4 +
         static_cast<size_t>(block_tiles / 2) * 8 * NB * 4;
}

}  // namespace omni::cuda::w4dec
