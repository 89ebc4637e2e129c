// `omniround bench flux`'s arithmetic and its random-weight transformer: the FLOPs of a FLUX.1-dev forward at
// 1024² (the issue's 74.4 TFLOP, counted independently here from the layer list), and a small config run end to
// end on the CPU with both weight formats.
#include <gtest/gtest.h>

#include <cmath>

#include "backends/cpu/cpu_backend.h"
#include "models/flux/flux_config.h"
#include "pipelines/diffusion/flux_bench.h"

namespace omni {
namespace {

TEST(FluxBench, ForwardFlopsOfFluxDevAt1024AreTheIssuesFigure) {
  FluxBenchOptions o;  // FLUX.1-dev, 1024 x 1024, 512 text tokens
  EXPECT_EQ(flux_image_tokens(o), 4096);
  // Counted from the Linears one by one: D = 3072, MLP 12288, L = 4608 tokens.
  const double D = 3072, M = 12288, L = 4608;
  const double dbl = 2 * L * (3 * D * D + D * D + D * M + M * D) * 19;     // q,k,v,out + MLP of both streams
  const double sgl = 2 * L * (3 * D * D + D * M + (D + M) * D) * 38;       // q,k,v + mlp in + proj_out
  const double att = 2 * (2 * L * L * D) * 57;                             // QKᵀ and PV
  EXPECT_DOUBLE_EQ(flux_forward_flops(o), dbl + sgl + att);
  EXPECT_NEAR(flux_forward_flops(o) / 1e12, 74.4, 0.1);
  o.width = o.height = 512;
  EXPECT_EQ(flux_image_tokens(o), 1024);
}

TEST(FluxBench, RandomWeightsRunBothFormatsOnTheCpu) {
  FluxBenchOptions o;
  o.spec = read_flux_transformer_config(std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/tiny/transformer");
  o.spec.num_heads = 4;
  o.spec.head_dim = 32;
  o.spec.axes_dims_rope = {8, 12, 12};  // inner 128: the blocks' Linears take 4-bit groups of 128
  o.width = o.height = 32;
  o.text_tokens = 5;
  o.repeats = 2;
  o.cfg_compare = true;
  for (bool w4 : {false, true}) {
    o.vae = w4;  // FLUX's VAE at 32 x 32 px: 4 x 4 latents
    const FluxBenchRun r = bench_flux_transformer(cpu_backend(), o, w4);
    EXPECT_EQ(r.forward_seconds.size(), 2u);
    EXPECT_EQ(r.batch2_forward_seconds.size(), 2u);
    for (double t : r.forward_seconds) EXPECT_GT(t, 0);
    EXPECT_GT(r.linear_weight_bytes, 0);
    EXPECT_EQ(r.vae_decode_seconds.size(), w4 ? 2u : 0u);
    if (w4) {
      EXPECT_NE(r.layouts.find("w4a16"), std::string::npos) << r.layouts;
      EXPECT_NE(r.layouts.find("dense"), std::string::npos) << r.layouts;  // the embedders and the head stay dense
    } else {
      EXPECT_EQ(r.layouts.find("w4a16"), std::string::npos) << r.layouts;
    }
  }
  o.width = 40;
  EXPECT_THROW(bench_flux_transformer(cpu_backend(), o, false), Error);
}

}  // namespace
}  // namespace omni
