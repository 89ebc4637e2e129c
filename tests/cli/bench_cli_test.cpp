// `omniround bench decode` end to end on the shipped model: the report's lines, the run counts, the bytes a decode
// step reads (checked against the model's shape), and clear errors for settings it cannot run.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "support/run_omniround.h"

namespace {

using Result = omni::testing_support::CommandResult;
Result run(const std::string& args) { return omni::testing_support::run_omniround(args); }

const std::string kModel = std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3";

double number_after(const std::string& out, const std::string& regex) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex(regex))) return -1.0;
  return std::stod(m[1].str());
}

TEST(BenchCli, DecodeReportsSpeedBytesAndRoofline) {
  const Result r = run("bench decode " + kModel + " --prompt-tokens 7 --tokens 5 --repeat 3 --threads 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_GT(number_after(r.output, R"(prefill: 7 tokens, ([0-9.]+) tokens/s \(median of 3 runs)"), 0.0) << r.output;
  EXPECT_GT(number_after(r.output, R"(decode:  5 tokens, ([0-9.]+) tokens/s \(median of 3 runs)"), 0.0) << r.output;
  // The shipped model's KV cache: 8 layers × (K + V) × 2 heads × 64 dims × 4 bytes (f32) = 8192 bytes per
  // position, and the timed steps attend over 7 + (5 + 1) / 2 = 10 positions on average: 81920 bytes = 0.08 MB.
  EXPECT_NEAR(number_after(r.output, R"(MB weights, ([0-9.]+) MB KV cache)"), 0.08, 0.001) << r.output;
  EXPECT_GT(number_after(r.output, R"(read per decode token: [0-9.]+ MB \(([0-9.]+) MB weights)"), 1.0) << r.output;
  EXPECT_GT(number_after(r.output, R"(decode roofline ([0-9.]+) tokens/s)"), 0.0) << r.output;
}

TEST(BenchCli, RefusesWhatItCannotRun) {
  Result r = run("bench decode " + kModel + " --prompt-tokens 100000 --tokens 4 --repeat 1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("exceed the model's context"), std::string::npos) << r.output;
  // Sizes whose sum overflows int64 are refused the same way, not allocated (issue 7, finding 2).
  r = run("bench decode " + kModel + " --prompt-tokens 9223372036854775807 --tokens 4 --repeat 1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("exceed the model's context of 2048"), std::string::npos) << r.output;
  r = run("bench decode " + kModel + " --prompt-tokens 8 --tokens 9223372036854775807 --repeat 1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("exceed the model's context of 2048"), std::string::npos) << r.output;
  r = run("bench " + kModel);
  EXPECT_NE(r.status, 0) << r.output;
  r = run("bench decode " + kModel + " --tokens 0");
  EXPECT_NE(r.status, 0) << r.output;
}

}  // namespace
