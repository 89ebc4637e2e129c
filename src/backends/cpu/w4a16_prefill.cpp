#include "backends/cpu/w4a16_prefill.h"

#include <vector>

#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/gemm_f32.h"
#include "backends/cpu/simd.h"
#include "backends/cpu/w4a16_tiles.h"
#include "core/error.h"
#include "core/half.h"

namespace omni {
namespace {

constexpr int64_t kTile = kW4TileOutputs;

// Panels of dequantised weights, s·(u − z), straight from the tile layout: a panel of NR outputs lies inside
// one tile (NR divides 64), and one word row gives its next 8 depths. Padded lanes have scale 0: they give 0.
class W4PanelSource final : public GemmPanelSource {
 public:
  explicit W4PanelSource(const W4A16CpuWeights& w) : w_(w), segment_of_row_(static_cast<size_t>(w.padded_inputs / 8)) {
    for (int64_t s = 0; s < w.num_segments(); ++s)
      for (int64_t r = w.segment_rows[static_cast<size_t>(s)]; r < w.segment_rows[static_cast<size_t>(s) + 1]; ++r)
        segment_of_row_[static_cast<size_t>(r)] = static_cast<int32_t>(s);
  }

  void pack(float* bp, int nr_stride, int64_t p0, int64_t kc, int64_t j0, int64_t /*nr*/) const override {
    const int64_t t = j0 / kTile, lane0 = j0 % kTile;
    const auto [codes, scales, zeros] = w4_tile_data(w_, t);
    [[maybe_unused]] const bool simd = active_cpu_isa() != CpuIsa::Scalar;
    for (int64_t r = p0 / 8; r < (p0 + kc) / 8; ++r) {
      const int64_t s = segment_of_row_[static_cast<size_t>(r)];
      float* dst = bp + (8 * r - p0) * nr_stride;
      const uint32_t* wr = codes + r * kTile + lane0;
      const uint16_t* sr = scales + s * kTile + lane0;
      const uint8_t* zr = zeros + s * kTile + lane0;
      int lane = 0;
#if defined(OMNI_CPU_HAVE_AVX2)
      if (simd) {
        const __m256i low4 = _mm256_set1_epi32(0xf);
        for (; lane + 8 <= nr_stride; lane += 8) {
          const __m256i words = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + lane));
          const __m256 sc = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sr + lane)));
          const __m256 z = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(zr + lane))));
          const __m256 zs = _mm256_mul_ps(z, sc);  // exact: z has 4 bits, s 11
          for (int j = 0; j < 8; ++j) {
            const __m256 u = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(words, 4 * j), low4));
            _mm256_storeu_ps(dst + j * nr_stride + lane, _mm256_fmsub_ps(u, sc, zs));
          }
        }
      }
#endif
      for (; lane < nr_stride; ++lane) {
        const float sc = f16_to_f32(sr[lane]), z = zr[lane];
        for (int j = 0; j < 8; ++j)
          dst[j * nr_stride + lane] = sc * (static_cast<float>((wr[lane] >> (4 * j)) & 0xfu) - z);
      }
    }
  }

 private:
  const W4A16CpuWeights& w_;
  std::vector<int32_t> segment_of_row_;
};

}  // namespace

void w4a16_prefill(float* y, const float* x, const W4A16CpuWeights& w, int64_t M) {
  OMNI_CHECK(kTile % gemm_f32_panel_width() == 0, "W4A16 prefill: GEMM panel width ", gemm_f32_panel_width(),
             " does not divide the tile width ", kTile);
  const W4PanelSource source(w);
  gemm_f32_packed_b(M, w.out_features, w.padded_inputs, x, w.padded_inputs, source, y, w.out_features);
}

}  // namespace omni
