// The whole FLUX denoising loop on the CUDA backend against diffusers' FluxPipeline (the golden of
// flux_pipeline_test.cpp: tools/make_flux_pipeline_golden.py, tests/data/flux/tiny-pipeline): 64 x 64 px, 3 steps,
// the latents after every step and the decoded 8-bit image, without CFG and with true CFG (scale 2, sequential and
// batched), with F32 and BF16 activations; the CPU backend's error with the same dtype is printed beside it. Needs a
// GPU: skipped elsewhere (and absent from a CPU-only build).
//
// Bounds. F32: those of flux_pipeline_test (latents 2e-5; image MAE 0.5, max 1). BF16: the velocities carry the
// transformer's BF16 error (≈ 1e-2, see tests/models/flux_cuda_test.cpp) but each step adds only dt·v to latents of
// norm ≈ |v|, so the latents stay within 3e-2; the image adds the VAE's BF16 error (1.1e-2 on the CPU): MAE ≤ 2,
// max ≤ 16 levels. Measured on the H200 (2026-12-02): F32 latents ≤ 1.1e-6 at every step, images identical
// without CFG and one value one step apart with it; BF16 latents ≤ 1.1e-2 (the CPU's BF16: 7.8e-3), images MAE
// ≤ 0.71, max 6; batched and sequential CFG identical on the GPU in BF16, 3.3e-7 apart in F32.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_runtime_info.h"
#include "io/safetensors.h"
#include "pipelines/diffusion/flux_pipeline.h"
#include "support/rel_error.h"
#include "support/source_dir.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
const std::string kFlux = testing_support::source_dir() + "/tests/data/flux/";

double rel(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.numel(), want.numel());
  if (got.numel() != want.numel()) return 1e9;
  return testing_support::rel_error(got.data<float>(), want.data<float>(), want.numel());
}

class FluxPipelineCuda : public ::testing::TestWithParam<DType> {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("omni_flux_pipeline_cuda_" + std::to_string(::getpid()))).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy(kFlux + "tiny-pipeline/transformer", dir_ + "/transformer", fs::copy_options::recursive);
    fs::copy(kFlux + "pipeline/vae", dir_ + "/vae", fs::copy_options::recursive);
    fs::copy(kFlux + "pipeline/scheduler", dir_ + "/scheduler", fs::copy_options::recursive);
    std::ofstream(dir_ + "/model_index.json") << R"({"_class_name": "FluxPipeline",)"
        << R"( "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],)"
        << R"( "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]})";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    gpu_ = std::make_unique<cuda::CudaBackend>(0, GetParam());
    cpu_ = std::make_unique<CpuBackend>(GetParam());
    golden_ = SafetensorsFile::open(kFlux + "tiny-pipeline/golden.safetensors");
    prompt_ = {golden_->tensor("prompt_embeds"), golden_->tensor("pooled")};
    negative_ = {golden_->tensor("negative_prompt_embeds"), golden_->tensor("negative_pooled")};
    s_.width = s_.height = 64;
    s_.steps = 3;
  }
  bool f32() const { return GetParam() == DType::F32; }

  struct Run {
    std::vector<Tensor> steps;
    RgbImage image;
  };
  Run run(Backend& be, const FluxPromptEmbeds* negative) {
    auto pipe = FluxPipeline::open(dir_, be);
    Run r;
    const Tensor final_latents = pipe->denoise(s_, prompt_, negative, golden_->tensor("latents"), &r.steps);
    r.image = pipe->decode(s_, final_latents);
    return r;
  }
  // Runs the loop on both backends and checks the GPU's steps and image against the golden of `tag`.
  Tensor run_and_check(const std::string& tag, const FluxPromptEmbeds* negative) {
    const Run g = run(*gpu_, negative), c = run(*cpu_, negative);
    std::string head = "[";  // appended piecewise: g++ 12 warns (-Wrestrict) on "literal" + std::string&&
    head.append(dtype_name(GetParam())).append("] ").append(tag).append(" (").append(cfg_mode_name(s_.cfg)).append(")");
    EXPECT_EQ(g.steps.size(), 3u);
    for (size_t i = 0; i < g.steps.size() && i < c.steps.size(); ++i) {
      const Tensor want = golden_->tensor(tag + "_step" + std::to_string(i));
      const double eg = rel(g.steps[i], want), ec = rel(c.steps[i], want);
      std::cout << head << " step " << i << ": latents cuda " << eg << ", cpu " << ec << "\n";
      EXPECT_LE(eg, f32() ? 2e-5 : 3e-2) << tag << " step " << i;
    }
    const Tensor want = golden_->tensor(tag + "_image");
    EXPECT_EQ(static_cast<int64_t>(g.image.pixels.size()), want.numel());
    double sum = 0;
    int max_abs = 0;
    for (int64_t i = 0; i < want.numel() && i < static_cast<int64_t>(g.image.pixels.size()); ++i) {
      const int d = std::abs(int{g.image.pixels[static_cast<size_t>(i)]} - int{want.data<uint8_t>()[i]});
      sum += d;
      max_abs = std::max(max_abs, d);
    }
    const double mae = sum / static_cast<double>(want.numel());
    std::cout << head << " image: MAE " << mae << ", max " << max_abs << "\n";
    EXPECT_LE(mae, f32() ? 0.5 : 2.0);
    EXPECT_LE(max_abs, f32() ? 1 : 16);
    return g.steps.empty() ? Tensor() : g.steps.back();
  }

  static std::string dir_;
  std::unique_ptr<cuda::CudaBackend> gpu_;
  std::unique_ptr<CpuBackend> cpu_;
  std::shared_ptr<SafetensorsFile> golden_;
  FluxPromptEmbeds prompt_, negative_;
  FluxSampling s_;
};
std::string FluxPipelineCuda::dir_;

TEST_P(FluxPipelineCuda, WithoutCfgEveryStepAndTheImageMatchDiffusers) { run_and_check("cfg1", nullptr); }

TEST_P(FluxPipelineCuda, TrueCfgSequentialAndBatchedMatchDiffusers) {
  s_.true_cfg_scale = 2.0f;
  s_.cfg = CfgMode::Sequential;
  const Tensor sequential = run_and_check("cfg2", &negative_);
  s_.cfg = CfgMode::Batched;
  const Tensor batched = run_and_check("cfg2", &negative_);
  ASSERT_TRUE(sequential.defined() && batched.defined());
  const double e = rel(batched, sequential);
  std::cout << "[" << dtype_name(GetParam()) << "] batched vs sequential CFG on the GPU: " << e << "\n";
  EXPECT_LE(e, f32() ? 2e-5 : 3e-2);
}

INSTANTIATE_TEST_SUITE_P(Activations, FluxPipelineCuda, ::testing::Values(DType::F32, DType::BF16),
                         [](const ::testing::TestParamInfo<DType>& p) { return std::string(dtype_name(p.param)); });

}  // namespace
}  // namespace omni
