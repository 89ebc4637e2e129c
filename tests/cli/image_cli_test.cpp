// `omniround image`: the PNG it writes is diffusers' image of the same prompt and seed
// (tools/make_flux_text_to_image_golden.py), the prompt and settings travel in its text chunks, progress and
// timings are printed, and bad requests are refused naming the setting.
#include <gtest/gtest.h>

#include "support/run_omniround.h"

#include <cmath>
#include <filesystem>
#include <string>

#include "io/image/png.h"
#include "io/safetensors.h"
#include "support/flux_t2i_folder.h"

namespace {

namespace fs = std::filesystem;
using Result = omni::testing_support::CommandResult;
Result run(const std::string& args) { return omni::testing_support::run_omniround(args); }
bool has(const Result& r, const std::string& part) { return r.output.find(part) != std::string::npos; }

const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/image_cli_test.tmp";
const std::string kPrompt = "a pair of trousers on a wooden table";

class ImageCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { omni::testing_support::assemble_flux_t2i_folder(kTmp + "/pipe"); }
  static std::string base(const std::string& size = "64x64", const std::string& steps = "3") {
    return "image " + kTmp + "/pipe --size " + size + " --steps " + steps +
           " --seed 7 --max-sequence-length 24 --device cpu ";
  }
};

TEST_F(ImageCli, WritesDiffusersImageWithThePromptInItsTextChunks) {
  const std::string out = kTmp + "/cfg.png";
  const Result r = run(base() + "-p \"" + kPrompt + "\" --negative-prompt \"blurry, dark\" --true-cfg-scale 2 -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r, "step 3/3")) << r.output;
  EXPECT_TRUE(has(r, "wrote " + out + " (64x64)")) << r.output;
  EXPECT_TRUE(has(r, "peak memory")) << r.output;
  omni::PngText text;
  const omni::RgbImage img = omni::read_png(out, &text);
  const omni::Tensor want =
      omni::SafetensorsFile::open(omni::testing_support::kFluxT2iGolden)->tensor("cfg_image");
  ASSERT_EQ(static_cast<int64_t>(img.pixels.size()), want.numel());
  double abs_sum = 0;
  for (int64_t i = 0; i < want.numel(); ++i)
    abs_sum += std::abs(static_cast<int>(img.pixels[static_cast<size_t>(i)]) - want.data<uint8_t>()[i]);
  EXPECT_LE(abs_sum / static_cast<double>(want.numel()), 0.5);
  std::map<std::string, std::string> chunks(text.begin(), text.end());
  EXPECT_EQ(chunks["prompt"], kPrompt);
  EXPECT_EQ(chunks["negative_prompt"], "blurry, dark");
  EXPECT_NE(chunks["parameters"].find("steps 3, size 64x64, seed 7"), std::string::npos) << chunks["parameters"];
  EXPECT_NE(chunks["parameters"].find("true_cfg_scale 2, cfg sequential"), std::string::npos) << chunks["parameters"];
  EXPECT_EQ(chunks["Software"].rfind("omniround ", 0), 0u);
}

TEST_F(ImageCli, BatchedCfgGivesTheSequentialImage) {
  const std::string common = base() + "-p \"" + kPrompt + "\" --true-cfg-scale 2 -q ";
  ASSERT_EQ(run(common + "-o " + kTmp + "/seq.png").status, 0);
  const Result r = run(common + "--cfg batched -o " + kTmp + "/bat.png");
  ASSERT_EQ(r.status, 0) << r.output;
  const omni::RgbImage a = omni::read_png(kTmp + "/seq.png"), b = omni::read_png(kTmp + "/bat.png");
  ASSERT_EQ(a.pixels.size(), b.pixels.size());
  int max_abs = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) max_abs = std::max(max_abs, std::abs(a.pixels[i] - b.pixels[i]));
  EXPECT_LE(max_abs, 1);  // one rounding step: batch 2 sums in another order
}

TEST_F(ImageCli, RefusesBadRequestsNamingTheSetting) {
  const std::string p = "-p \"" + kPrompt + "\" -o " + kTmp + "/bad.png ";
  Result r = run(base("1000x1000") + p);
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(has(r, "--size 1000x1000: width and height must be positive multiples of 16")) << r.output;
  r = run(base("big") + p);
  EXPECT_TRUE(has(r, "--size big: expected WIDTHxHEIGHT")) << r.output;
  r = run(base("64x64", "0") + p);
  EXPECT_TRUE(has(r, "--steps 0: expected 1 to 1000")) << r.output;
  r = run(base() + p + "--cfg parallel");
  EXPECT_TRUE(has(r, "unknown --cfg \"parallel\"")) << r.output;
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += "trousers ";
  r = run(base() + "-p \"" + long_prompt + "\" -o " + kTmp + "/bad.png");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(has(r, "T5 tokens (with </s>); the text encoder takes 24")) << r.output;
  EXPECT_FALSE(fs::exists(kTmp + "/bad.png"));
  fs::remove_all(kTmp + "/broken");
  fs::copy(kTmp + "/pipe", kTmp + "/broken", fs::copy_options::recursive);
  fs::remove_all(kTmp + "/broken/text_encoder_2");
  r = run("image " + kTmp + "/broken -p x -o " + kTmp + "/bad.png --device cpu");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(has(r, "has no text_encoder_2/ component")) << r.output;
  fs::remove_all(kTmp + "/broken/scheduler");
  fs::copy(kTmp + "/pipe/text_encoder_2", kTmp + "/broken/text_encoder_2", fs::copy_options::recursive);
  r = run("image " + kTmp + "/broken -p x -o " + kTmp + "/bad.png --device cpu");
  EXPECT_TRUE(has(r, "has no scheduler/ component")) << r.output;
}

}  // namespace
