// `omniround compare`: the metrics of a pair against an independent computation (tools/make_png_fixtures.py,
// Python floats), the thresholds of each level (exit 0 pass, 3 below them), the JSON report, the contact sheet,
// folders paired by name, and clear errors.
#include <gtest/gtest.h>

#include "support/run_omniround.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "io/file_util.h"
#include "io/image/png.h"

namespace {

namespace fs = std::filesystem;
using Result = omni::testing_support::CommandResult;
Result run(const std::string& args) { return omni::testing_support::run_omniround(args); }
bool has(const Result& r, const std::string& part) { return r.output.find(part) != std::string::npos; }

const std::string kPng = std::string(OMNI_SOURCE_DIR) + "/tests/data/png/";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/compare_cli_test.tmp";

class CompareCli : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(kTmp);
    fs::create_directories(kTmp);
  }
};

TEST_F(CompareCli, MetricsMatchAnIndependentComputation) {
  const Result r = run("compare --reference " + kPng + "rgb8.png --candidate " + kPng + "rgb8_noisy.png --json " +
                       kTmp + "/report.json --sheet " + kTmp + "/sheet.png");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r, "PASS at level default")) << r.output;
  const nlohmann::json got = nlohmann::json::parse(omni::read_text_file(kTmp + "/report.json"));
  const nlohmann::json want = nlohmann::json::parse(omni::read_text_file(kPng + "rgb8_vs_noisy.json"));
  for (const auto& [key, value] : want.items()) {
    const double g = got["all_images_metrics"][key].get<double>(), w = value.get<double>();
    EXPECT_NEAR(g, w, 1e-12 * std::max(1.0, std::abs(w))) << key;
  }
  EXPECT_TRUE(got["passed"].get<bool>());
  const omni::RgbImage sheet = omni::read_png(kTmp + "/sheet.png");
  EXPECT_EQ(sheet.width, 3 * 7 + 4 * 8);
  EXPECT_EQ(sheet.height, 5 + 2 * 8);
}

TEST_F(CompareCli, StrictLevelFailsWithExitThreeNamingTheMetric) {
  const Result r = run("compare --reference " + kPng + "rgb8.png --candidate " + kPng + "rgb8_noisy.png --level strict");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_TRUE(has(r, "FAIL at level strict")) << r.output;
  EXPECT_TRUE(has(r, "MAE 4.390 > 3")) << r.output;
}

TEST_F(CompareCli, FoldersArePairedByName) {
  for (const char* d : {"ref", "cand"}) fs::create_directories(kTmp + "/" + d);
  fs::copy_file(kPng + "rgb8.png", kTmp + "/ref/a.png");
  fs::copy_file(kPng + "palette.png", kTmp + "/ref/b.png");
  fs::copy_file(kPng + "rgb8.png", kTmp + "/cand/a.png");
  fs::copy_file(kPng + "palette.png", kTmp + "/cand/b.png");
  const Result same = run("compare --reference " + kTmp + "/ref --candidate " + kTmp + "/cand --level strict");
  EXPECT_EQ(same.status, 0) << same.output;
  EXPECT_TRUE(has(same, "| a.png | inf")) << same.output;
  EXPECT_TRUE(has(same, "all 2 image(s)")) << same.output;
  fs::remove(kTmp + "/cand/b.png");
  const Result missing = run("compare --reference " + kTmp + "/ref --candidate " + kTmp + "/cand");
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_TRUE(has(missing, "b.png is missing")) << missing.output;
}

TEST_F(CompareCli, SizeMismatchAndBadLevelAreClearErrors) {
  const Result size = run("compare --reference " + kPng + "rgb8.png --candidate " + kTmp + "/../compare_cli_test.tmp/x.png");
  EXPECT_NE(size.status, 0) << size.output;  // no such file
  omni::write_png(kTmp + "/small.png", omni::RgbImage{2, 2, std::vector<uint8_t>(12, 9)});
  const Result mismatch = run("compare --reference " + kPng + "rgb8.png --candidate " + kTmp + "/small.png");
  EXPECT_EQ(mismatch.status, 1) << mismatch.output;
  EXPECT_TRUE(has(mismatch, "has sizes 7x5 (reference) and 2x2 (candidate)")) << mismatch.output;
  const Result level = run("compare --reference " + kPng + "rgb8.png --candidate " + kPng + "rgb8.png --level tight");
  EXPECT_EQ(level.status, 1) << level.output;
  EXPECT_TRUE(has(level, "unknown comparison level \"tight\"")) << level.output;
}

TEST_F(CompareCli, ClassifierScoresPromptFollowingByFileName) {
  // Two sneakers (class 7) from the shipped text-to-image model; the same set as reference and candidate.
  const std::string flux = std::string(OMNI_SOURCE_DIR) + "/models/tiny-flux";
  fs::create_directories(kTmp + "/ref");
  for (int k = 0; k < 2; ++k) {
    const Result g = run("image " + flux + " -p \"a photo of a sneaker\" --size 32x32 --steps 12 --true-cfg-scale 4 "
                         "--max-sequence-length 32 --device cpu -q --seed " + std::to_string(k + 1) + " -o " + kTmp +
                         "/ref/07-" + std::to_string(k) + ".png");
    ASSERT_EQ(g.status, 0) << g.output;
  }
  fs::copy(kTmp + "/ref", kTmp + "/cand", fs::copy_options::recursive);
  Result r = run("compare --reference " + kTmp + "/ref --candidate " + kTmp + "/cand --classifier " + flux +
                 "/classifier --json " + kTmp + "/c.json");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r, "class accuracy reference 100.0 %, candidate 100.0 % (drift +0.0 points)")) << r.output;
  const nlohmann::json j = nlohmann::json::parse(omni::read_text_file(kTmp + "/c.json"));
  // Identical sets: 0 up to the rounding of the covariances' square roots (2 samples of 256 features: rank 1).
  EXPECT_NEAR(j["classifier"]["frechet_distance"].get<double>(), 0.0, 1e-3);
  // Renamed as if a bag (class 8) had been asked for: the sneakers miss.
  for (const char* d : {"ref", "cand"})
    for (int k = 0; k < 2; ++k)
      fs::rename(kTmp + "/" + d + "/07-" + std::to_string(k) + ".png", kTmp + "/" + d + "/08-" + std::to_string(k) + ".png");
  r = run("compare --reference " + kTmp + "/ref --candidate " + kTmp + "/cand --classifier " + flux + "/classifier");
  EXPECT_TRUE(has(r, "class accuracy reference 0.0 %, candidate 0.0 %")) << r.output;
  fs::rename(kTmp + "/ref/08-0.png", kTmp + "/ref/sneaker.png");
  fs::rename(kTmp + "/cand/08-0.png", kTmp + "/cand/sneaker.png");
  r = run("compare --reference " + kTmp + "/ref --candidate " + kTmp + "/cand --classifier " + flux + "/classifier");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(has(r, "image \"sneaker.png\" does not start with its class index")) << r.output;
}

}  // namespace
