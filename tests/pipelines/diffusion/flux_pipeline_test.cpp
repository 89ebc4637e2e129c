// The whole FLUX denoising loop against diffusers' FluxPipeline (tools/make_flux_pipeline_golden.py): a tiny
// pipeline (the FLUX transformer at small width, the tiny VAE, FLUX.1-dev's scheduler config), given encoder
// outputs and packed latents, 64 x 64 px, 3 steps, f32. Checked: the latents after every step and the decoded
// 8-bit image, without CFG and with true CFG (scale 2, sequential and batched), and the settings the pipeline
// refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "pipelines/diffusion/flux_pipeline.h"
#include "support/error_of.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
const std::string kFlux = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/flux_pipeline_test.tmp";
// Measured on the AMD EPYC, 2026-12-01: latents within 1.05e-6 relative of diffusers at every step (f32); the
// image identical without CFG, one of 12288 values one step apart with CFG. Bounds: 2e-5 for the latents (about
// 20x), MAE 0.5 and max 1 for the uint8 image (one rounding step).
constexpr double kLatentBound = 2e-5;

double rel_error(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.numel(), want.numel());
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double d = static_cast<double>(got.data<float>()[i]) - want.data<float>()[i];
    num += d * d;
    den += static_cast<double>(want.data<float>()[i]) * want.data<float>()[i];
  }
  return std::sqrt(num / den);
}

class FluxPipelineGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(kTmp);
    fs::create_directories(kTmp);
    fs::copy(kFlux + "tiny-pipeline/transformer", kTmp + "/transformer", fs::copy_options::recursive);
    fs::copy(kFlux + "pipeline/vae", kTmp + "/vae", fs::copy_options::recursive);
    fs::copy(kFlux + "pipeline/scheduler", kTmp + "/scheduler", fs::copy_options::recursive);
    std::ofstream(kTmp + "/model_index.json") << R"({"_class_name": "FluxPipeline",)"
        << R"( "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],)"
        << R"( "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]})";
  }
  void SetUp() override {
    golden_ = SafetensorsFile::open(kFlux + "tiny-pipeline/golden.safetensors");
    pipe_ = FluxPipeline::open(kTmp, cpu_backend());
    prompt_ = {golden_->tensor("prompt_embeds"), golden_->tensor("pooled")};
    negative_ = {golden_->tensor("negative_prompt_embeds"), golden_->tensor("negative_pooled")};
    s_.width = s_.height = 64;
    s_.steps = 3;
  }
  // Runs the loop and checks every step and the image against the golden of `tag`.
  Tensor run_and_check(const std::string& tag, const FluxPromptEmbeds* negative) {
    std::vector<Tensor> steps;
    int calls = 0;
    const Tensor final_latents = pipe_->denoise(s_, prompt_, negative, golden_->tensor("latents"), &steps,
                                                [&](const FluxStepInfo& i) { EXPECT_EQ(i.step, ++calls); });
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(steps.size(), 3u);
    for (size_t i = 0; i < steps.size(); ++i) {
      const double e = rel_error(steps[i], golden_->tensor(tag + "_step" + std::to_string(i)));
      std::cout << tag << " (" << cfg_mode_name(s_.cfg) << ") step " << i << ": latents rel. error " << e << "\n";
      EXPECT_LE(e, kLatentBound) << tag << " step " << i;
    }
    const RgbImage img = pipe_->decode(s_, final_latents);
    const Tensor want = golden_->tensor(tag + "_image");
    EXPECT_EQ(img.width, 64);
    EXPECT_EQ(img.height, 64);
    EXPECT_EQ(static_cast<int64_t>(img.pixels.size()), want.numel());
    double abs_sum = 0;
    int max_abs = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const int d = std::abs(int{img.pixels[static_cast<size_t>(i)]} - int{want.data<uint8_t>()[i]});
      abs_sum += d;
      max_abs = std::max(max_abs, d);
    }
    std::cout << tag << " image: MAE " << abs_sum / static_cast<double>(want.numel()) << ", max " << max_abs << "\n";
    EXPECT_LE(abs_sum / static_cast<double>(want.numel()), 0.5);
    EXPECT_LE(max_abs, 1);
    return final_latents;
  }
  std::shared_ptr<SafetensorsFile> golden_;
  std::unique_ptr<FluxPipeline> pipe_;
  FluxPromptEmbeds prompt_, negative_;
  FluxSampling s_;
};

TEST_F(FluxPipelineGolden, WithoutCfgEveryStepAndTheImageMatchDiffusers) { run_and_check("cfg1", nullptr); }

TEST_F(FluxPipelineGolden, TrueCfgSequentialAndBatchedMatchDiffusers) {
  s_.true_cfg_scale = 2.0f;
  s_.cfg = CfgMode::Sequential;
  const Tensor sequential = run_and_check("cfg2", &negative_);
  s_.cfg = CfgMode::Batched;
  const Tensor batched = run_and_check("cfg2", &negative_);
  const double e = rel_error(batched, sequential);
  std::cout << "batched vs sequential CFG: " << e << "\n";
  EXPECT_LE(e, kLatentBound);
}

TEST_F(FluxPipelineGolden, NoiseIsSeededAndStandardNormal) {
  s_.seed = 5;
  const Tensor a = pipe_->noise(s_), b = pipe_->noise(s_);
  s_.seed = 6;
  const Tensor c = pipe_->noise(s_);
  ASSERT_EQ(a.shape(), (Shape{1, 16, 8, 8}));
  double sum = 0, sq = 0;
  int same = 0, differ = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    same += a.data<float>()[i] == b.data<float>()[i];
    differ += a.data<float>()[i] != c.data<float>()[i];
    sum += a.data<float>()[i];
    sq += static_cast<double>(a.data<float>()[i]) * a.data<float>()[i];
  }
  EXPECT_EQ(same, a.numel());
  EXPECT_EQ(differ, a.numel());
  const double n = static_cast<double>(a.numel()), mean = sum / n, var = sq / n - mean * mean;
  EXPECT_LT(std::abs(mean), 4.0 / std::sqrt(n));  // 1024 values: mean within 4 standard errors of 0
  EXPECT_NEAR(var, 1.0, 0.2);
}

TEST_F(FluxPipelineGolden, BadSettingsAreRefusedNamingThem) {
  auto err = [&](FluxSampling s, const FluxPromptEmbeds* neg) {
    return testing_support::error_of([&] { pipe_->denoise(s, prompt_, neg, golden_->tensor("latents")); });
  };
  FluxSampling s = s_;
  s.width = 60;
  EXPECT_NE(err(s, nullptr).find("multiples of 16"), std::string::npos) << err(s, nullptr);
  s = s_;
  s.steps = 0;
  EXPECT_NE(err(s, nullptr).find("--steps 0"), std::string::npos);
  s = s_;
  s.true_cfg_scale = 3.0f;
  EXPECT_NE(err(s, nullptr).find("needs a negative prompt"), std::string::npos);
  s = s_;
  s.width = s.height = 128;  // latents of a 64 x 64 image
  EXPECT_NE(err(s, nullptr).find("packed latents expected [1, 64, 64]"), std::string::npos) << err(s, nullptr);
}

}  // namespace
}  // namespace omni
