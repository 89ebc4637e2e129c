// Text to image end to end against diffusers' FluxPipeline called with prompt strings
// (tools/make_flux_text_to_image_golden.py): both tokenizers' ids, both encoders' outputs and the decoded image of a
// tiny pipeline, 64 x 64 px, 3 steps, without and with true CFG, from omniround's own seeded noise; and the
// requests it refuses before any work.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "pipelines/diffusion/flux_text_to_image.h"
#include "support/error_of.h"
#include "support/flux_t2i_folder.h"
#include "support/rel_error.h"

namespace omni {
namespace {

using testing_support::error_of;
using testing_support::rel_error;
const std::string kDir = std::string(OMNI_BINARY_DIR) + "/flux_text_to_image_test.tmp";
constexpr int64_t kMaxSeq = 24;
// The encoders and the loop run in f32 from the same BF16 weights as the reference: measured errors are ~1e-7
// (printed); 1e-5 leaves room for summation order. The image: within one uint8 step, MAE ≤ 0.5.
constexpr double kEmbedBound = 1e-5;

FluxImageRequest request(const std::string& tag) {
  FluxImageRequest r;
  r.sampling.width = r.sampling.height = 64;
  r.sampling.steps = 3;
  r.sampling.guidance = 3.5f;
  r.sampling.seed = 7;
  r.max_sequence_length = kMaxSeq;
  if (tag == "plain") {
    r.prompt = "A photo of a RED  sneaker,\tstudio light!";
  } else {
    r.prompt = "a pair of trousers on a wooden table";
    r.negative_prompt = "blurry, dark";
    r.sampling.true_cfg_scale = 2.0f;
  }
  return r;
}

class FluxTextToImageGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { testing_support::assemble_flux_t2i_folder(kDir); }
  void SetUp() override {
    golden_ = SafetensorsFile::open(testing_support::kFluxT2iGolden);
    t2i_ = FluxTextToImage::open(kDir, cpu_backend());
  }
  std::shared_ptr<SafetensorsFile> golden_;
  std::unique_ptr<FluxTextToImage> t2i_;
};

TEST_F(FluxTextToImageGolden, PromptEmbeddingsMatchDiffusers) {
  for (const char* tag : {"plain", "cfg"}) {
    const FluxImageRequest r = request(tag);
    FluxImageResult counts;
    const FluxPromptEmbeds e = t2i_->encode(r.prompt, kMaxSeq, &counts);
    const Tensor want_seq = golden_->tensor(std::string(tag) + "_prompt_embeds");
    const Tensor want_pooled = golden_->tensor(std::string(tag) + "_pooled");
    ASSERT_EQ(e.sequence.shape(), want_seq.shape());
    ASSERT_EQ(e.pooled.shape(), want_pooled.shape());
    const double es = rel_error(e.sequence.data<float>(), want_seq.data<float>(), want_seq.numel());
    const double ep = rel_error(e.pooled.data<float>(), want_pooled.data<float>(), want_pooled.numel());
    std::cout << tag << ": T5 sequence rel. error " << es << ", CLIP pooled " << ep << ", " << counts.prompt_t5_tokens
              << " T5 / " << counts.prompt_clip_tokens << " CLIP tokens\n";
    EXPECT_LE(es, kEmbedBound) << tag;
    EXPECT_LE(ep, kEmbedBound) << tag;
    EXPECT_GT(counts.prompt_t5_tokens, 3);
    EXPECT_LT(counts.prompt_t5_tokens, kMaxSeq);
    EXPECT_FALSE(counts.clip_truncated);
  }
}

TEST_F(FluxTextToImageGolden, ImagesMatchDiffusersWithAndWithoutTrueCfg) {
  for (const char* tag : {"plain", "cfg"}) {
    int steps = 0;
    const FluxImageResult out = t2i_->generate(request(tag), [&](const FluxStepInfo&) { ++steps; });
    EXPECT_EQ(steps, 3);
    const Tensor want = golden_->tensor(std::string(tag) + "_image");
    ASSERT_EQ(static_cast<int64_t>(out.image.pixels.size()), want.numel());
    double abs_sum = 0;
    int max_abs = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const int d = std::abs(static_cast<int>(out.image.pixels[static_cast<size_t>(i)]) - want.data<uint8_t>()[i]);
      abs_sum += d;
      max_abs = std::max(max_abs, d);
    }
    std::cout << tag << ": image MAE " << abs_sum / static_cast<double>(want.numel()) << ", max " << max_abs << "\n";
    EXPECT_LE(abs_sum / static_cast<double>(want.numel()), 0.5) << tag;
    EXPECT_LE(max_abs, 1) << tag;
  }
}

TEST_F(FluxTextToImageGolden, SameSeedSameImageOtherSeedOtherImage) {
  FluxImageRequest r = request("plain");
  const RgbImage a = t2i_->generate(r).image;
  const RgbImage b = t2i_->generate(r).image;
  EXPECT_EQ(a.pixels, b.pixels);
  r.sampling.seed = 8;
  EXPECT_NE(t2i_->generate(r).image.pixels, a.pixels);
}

TEST_F(FluxTextToImageGolden, RefusesBadRequestsNamingTheSetting) {
  FluxImageRequest r = request("plain");
  r.prompt.clear();
  for (int i = 0; i < 40; ++i) r.prompt += "trousers ";
  EXPECT_NE(error_of([&] { t2i_->generate(r); }).find("T5 tokens"), std::string::npos);
  r = request("plain");
  r.sampling.width = 72;
  EXPECT_NE(error_of([&] { t2i_->generate(r); }).find("multiples of 16"), std::string::npos);
  r = request("plain");
  r.sampling.steps = 0;
  EXPECT_NE(error_of([&] { t2i_->generate(r); }).find("--steps 0"), std::string::npos);
  r = request("plain");
  r.max_sequence_length = 0;
  EXPECT_NE(error_of([&] { t2i_->generate(r); }).find("--max-sequence-length"), std::string::npos);
}

TEST(FluxTextToImageFolder, MissingComponentsAreNamed) {
  const std::string dir = kDir + "-missing";
  for (const char* part : {"tokenizer_2", "text_encoder", "tokenizer"}) {
    testing_support::assemble_flux_t2i_folder(dir);
    std::filesystem::remove_all(dir + "/" + part);
    EXPECT_NE(error_of([&] { FluxTextToImage::open(dir, cpu_backend()); }).find(std::string("no ") + part + "/"),
              std::string::npos)
        << part;
  }
}

}  // namespace
}  // namespace omni
