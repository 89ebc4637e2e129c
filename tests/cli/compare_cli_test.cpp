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

}  // namespace
