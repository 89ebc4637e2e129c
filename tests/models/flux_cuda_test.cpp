// FLUX's models on the CUDA backend against the same goldens the CPU tests use: the tiny FLUX transformer
// (tests/data/flux/tiny, diffusers; every block and the velocity) and its W4A16 checkpoint, the VAE decoder
// (tests/data/flux/pipeline, diffusers; conv_in, mid block, up_blocks.0, the image and its uint8 form), and the two
// text encoders (tests/data/flux/tiny-{clip,t5}, transformers; every layer and the outputs), each with F32 and
// BF16 activations. The CPU backend with the same activation dtype runs the same fixture beside it and its error
// is printed too. Needs a GPU: skipped elsewhere (and absent from a CPU-only build).
//
// Bounds. F32: the CPU golden tests' bounds (transformer 1e-5, W4A16 5e-5, VAE 1e-5, text encoders 3e-6): the GPU
// computes the same f32 function (cuBLAS f32 without TF32, f32 kernels), only the summation order differs.
// BF16: every op rounds its output to bf16 (relative error ≤ 2^-9 each, ≈ 1.1e-3 rms), some 20 ops per block
// deep; the CPU's BF16 runs of these fixtures, which round at the same places, measure 4.8e-3 (CLIP), 7.2e-3 (T5)
// and 1.1e-2 (VAE image) against the f32 goldens, and the GPU differs from them only in summation order inside
// each op (the VAE's conv weights, rounded to bf16 for the tensor cores, are BF16 in the checkpoint already).
// Bound 3e-2 for every BF16 output (the CPU BF16 tests' bound, ≈ 3x the largest measurement); the uint8 image
// with BF16 activations: mean absolute difference ≤ 2 and max ≤ 16 levels (1.1e-2 relative on values of rms ≈ 0.5
// is ≈ 0.7 levels on average; single pixels near edges move more).
// Measured on the H200 (2026-12-02), cuda beside cpu: F32 velocity 2.1e-6 (2.1e-6), W4A16 2.3e-6, VAE image 1.0e-6
// (uint8 identical), CLIP ≤ 2.0e-7, T5 ≤ 3.8e-7; BF16 velocity 8.2e-3 (7.1e-3), W4A16 8.8e-3, VAE image 1.2e-2
// (1.1e-2; uint8 MAE 0.58, max 4), CLIP ≤ 5.7e-3, T5 7.2e-3 (identical to the CPU's).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_runtime_info.h"
#include "io/safetensors.h"
#include "models/flux/flux.h"
#include "models/text_encoders/text_encoders.h"
#include "models/vae/autoencoder_kl.h"
#include "support/rel_error.h"
#include "support/source_dir.h"

namespace omni {
namespace {

const std::string kFlux = testing_support::source_dir() + "/tests/data/flux/";

double rel(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  if (got.shape() != want.shape()) return 1e9;
  const Tensor g = got.to(DType::F32), w = want.to(DType::F32);
  return testing_support::rel_error(g.data<float>(), w.data<float>(), w.numel());
}

std::vector<float> values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

class FluxCuda : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    gpu_ = std::make_unique<cuda::CudaBackend>(0, GetParam());
    cpu_ = std::make_unique<CpuBackend>(GetParam());
  }
  DType adt() const { return GetParam(); }
  bool f32() const { return adt() == DType::F32; }
  // The bound of an f32 output (the CPU golden test's) or of a BF16 one (see the top).
  double bound(double f32_bound) const { return f32() ? f32_bound : 3e-2; }
  // Checks one output: the GPU's error against the golden, printed beside the CPU's with the same dtype.
  void check(const std::string& what, const Tensor& gpu, const Tensor& cpu, const Tensor& want, double f32_bound) {
    const double eg = rel(gpu, want), ec = rel(cpu, want);
    std::cout << "[" << dtype_name(adt()) << "] " << what << ": cuda " << eg << ", cpu " << ec << " (bound "
              << bound(f32_bound) << ")\n";
    EXPECT_LE(eg, bound(f32_bound)) << what;
  }

  std::unique_ptr<cuda::CudaBackend> gpu_;
  std::unique_ptr<CpuBackend> cpu_;
};

FluxInputs flux_inputs(const SafetensorsFile& g) {
  FluxInputs in;
  in.hidden_states = g.tensor("hidden_states");
  in.encoder_hidden_states = g.tensor("encoder_hidden_states");
  in.pooled_projections = g.tensor("pooled_projections");
  in.timestep = values(g.tensor("timestep"));
  in.guidance = values(g.tensor("guidance"));
  in.img_ids = g.tensor("img_ids");
  in.txt_ids = g.tensor("txt_ids");
  return in;
}

TEST_P(FluxCuda, TransformerEveryBlockAndTheVelocityMatchDiffusers) {
  const auto golden = SafetensorsFile::open(kFlux + "tiny/golden.safetensors");
  const FluxInputs in = flux_inputs(*golden);
  auto gpu = open_flux_transformer(kFlux + "tiny/transformer", *gpu_);
  auto cpu = open_flux_transformer(kFlux + "tiny/transformer", *cpu_);
  FluxTrace tg, tc;
  const Tensor out_g = gpu->forward(in, &tg), out_c = cpu->forward(in, &tc);
  check("temb", tg.temb, tc.temb, golden->tensor("temb"), 1e-5);
  ASSERT_EQ(tg.block_img.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const std::string b = "block" + std::to_string(i);
    check(b + (i < 2 ? " (double) img" : " (single) img"), tg.block_img[i], tc.block_img[i],
          golden->tensor(b + "_img"), 1e-5);
    check(b + (i < 2 ? " (double) txt" : " (single) txt"), tg.block_txt[i], tc.block_txt[i],
          golden->tensor(b + "_txt"), 1e-5);
  }
  check("velocity", out_g, out_c, golden->tensor("output"), 1e-5);
  // A second forward on the warm backend (cached buffers, reused index tensors) gives the same velocity.
  const Tensor again = gpu->forward(in);
  EXPECT_LE(rel(again, out_g), f32() ? 1e-6 : 1e-3);
}

// The W4A16 checkpoint: with BF16 activations the CUDA backend's W4A16 kernels where they take the shapes, else the
// weights dequantized on the device; with F32 activations always dequantized.
TEST_P(FluxCuda, W4A16TransformerMatchesDiffusersOnItsDequantizedWeights) {
  const auto golden = SafetensorsFile::open(kFlux + "tiny/golden.safetensors");
  const auto golden_w4 = SafetensorsFile::open(kFlux + "tiny-w4a16/golden.safetensors");
  const FluxInputs in = flux_inputs(*golden);
  auto gpu = open_flux_transformer(kFlux + "tiny-w4a16/transformer", *gpu_);
  auto cpu = open_flux_transformer(kFlux + "tiny-w4a16/transformer", *cpu_);
  std::cout << "[" << dtype_name(adt()) << "] W4A16 layouts on the GPU: " << gpu->load_report().layouts_summary()
            << "\n";
  EXPECT_EQ(gpu->load_report().quantized_linears, 2 * 14 + 2 * 6);
  const Tensor out_g = gpu->forward(in), out_c = cpu->forward(in);
  check("W4A16 velocity", out_g, out_c, golden_w4->tensor("output"), 5e-5);
  EXPECT_GT(rel(out_g, golden->tensor("output")), 100 * 5e-5);  // the quantized weights are really in use
}

TEST_P(FluxCuda, VaeDecoderMatchesDiffusers) {
  const auto golden = SafetensorsFile::open(kFlux + "pipeline/golden.safetensors");
  auto gpu = open_vae_decoder(kFlux + "pipeline/vae", *gpu_);
  auto cpu = open_vae_decoder(kFlux + "pipeline/vae", *cpu_);
  VaeTrace tg, tc;
  const Tensor img_g = gpu->decode(golden->tensor("vae_z"), &tg), img_c = cpu->decode(golden->tensor("vae_z"), &tc);
  check("VAE conv_in", tg.conv_in, tc.conv_in, golden->tensor("vae_conv_in"), 1e-5);
  check("VAE mid_block", tg.mid_block, tc.mid_block, golden->tensor("vae_mid"), 1e-5);
  ASSERT_EQ(tg.up_blocks.size(), 4u);
  check("VAE up_blocks.0", tg.up_blocks[0], tc.up_blocks[0], golden->tensor("vae_up0"), 1e-5);
  check("VAE image", img_g, img_c, golden->tensor("vae_image"), 1e-5);
  // uint8: one rounding step at most in f32 (as on the CPU); with BF16 see the top.
  const Tensor u8 = image_to_uint8(img_g), want = golden->tensor("vae_uint8");
  ASSERT_EQ(u8.shape(), want.shape());
  int64_t max_diff = 0;
  double sum = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const int64_t d = std::abs(int64_t{u8.data<uint8_t>()[i]} - int64_t{want.data<uint8_t>()[i]});
    max_diff = std::max(max_diff, d);
    sum += static_cast<double>(d);
  }
  const double mae = sum / static_cast<double>(want.numel());
  std::cout << "[" << dtype_name(adt()) << "] VAE uint8: MAE " << mae << ", max " << max_diff << "\n";
  EXPECT_LE(mae, f32() ? 1.0 : 2.0);
  EXPECT_LE(max_diff, f32() ? 1 : 16);
}

TEST_P(FluxCuda, ClipTextEncoderMatchesTransformers) {
  const auto golden = SafetensorsFile::open(kFlux + "tiny-clip/golden.safetensors");
  auto gpu = open_clip_text_encoder(kFlux + "tiny-clip/text_encoder", *gpu_);
  auto cpu = open_clip_text_encoder(kFlux + "tiny-clip/text_encoder", *cpu_);
  TextEncoderTrace tg, tc;
  const ClipTextOutput og = gpu->forward(golden->tensor("input_ids"), &tg);
  const ClipTextOutput oc = cpu->forward(golden->tensor("input_ids"), &tc);
  check("CLIP embeddings", tg.embeddings, tc.embeddings, golden->tensor("embeddings"), 3e-6);
  ASSERT_EQ(tg.layers.size(), 2u);
  for (size_t i = 0; i < tg.layers.size(); ++i)
    check("CLIP layer " + std::to_string(i), tg.layers[i], tc.layers[i], golden->tensor("layer" + std::to_string(i)),
          3e-6);
  check("CLIP last_hidden_state", og.last_hidden_state, oc.last_hidden_state, golden->tensor("last_hidden_state"),
        3e-6);
  check("CLIP pooler_output", og.pooler_output, oc.pooler_output, golden->tensor("pooler_output"), 3e-6);
}

TEST_P(FluxCuda, T5EncoderMatchesTransformers) {
  const auto golden = SafetensorsFile::open(kFlux + "tiny-t5/golden.safetensors");
  auto gpu = open_t5_encoder(kFlux + "tiny-t5/text_encoder_2", *gpu_);
  auto cpu = open_t5_encoder(kFlux + "tiny-t5/text_encoder_2", *cpu_);
  TextEncoderTrace tg, tc;
  const Tensor og = gpu->forward(golden->tensor("input_ids"), &tg);
  const Tensor oc = cpu->forward(golden->tensor("input_ids"), &tc);
  check("T5 embeddings", tg.embeddings, tc.embeddings, golden->tensor("embeddings"), 3e-6);
  ASSERT_EQ(tg.layers.size(), 2u);
  for (size_t i = 0; i < tg.layers.size(); ++i)
    check("T5 block " + std::to_string(i), tg.layers[i], tc.layers[i], golden->tensor("layer" + std::to_string(i)),
          3e-6);
  check("T5 last_hidden_state", og, oc, golden->tensor("last_hidden_state"), 3e-6);
}

INSTANTIATE_TEST_SUITE_P(Activations, FluxCuda, ::testing::Values(DType::F32, DType::BF16),
                         [](const ::testing::TestParamInfo<DType>& p) { return std::string(dtype_name(p.param)); });

}  // namespace
}  // namespace omni
