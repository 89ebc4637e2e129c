// Bad input to `omniround quantize` gives one clear error line and leaves no output that looks complete.
#include <gtest/gtest.h>

#include "support/run_omniround.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;

using Result = omni::testing_support::CommandResult;
Result run(const std::string& args) { return omni::testing_support::run_omniround(args); }

const std::string kModel = std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/quantize_errors_test.tmp";

bool has(const Result& r, const std::string& part) { return r.output.find(part) != std::string::npos; }

class QuantizeErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(kTmp);
    fs::create_directories(kTmp);
  }
};

TEST_F(QuantizeErrors, TooFewCalibrationSamples) {
  std::ofstream(kTmp + "/tiny.txt") << "only a few words here\nand a second line\n";
  const Result r = run("quantize " + kModel + " -o " + kTmp + "/out --nsamples 8 --seqlen 64 --dataset " + kTmp +
                       "/tiny.txt");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "omniround: error:")) << r.output;
  EXPECT_TRUE(has(r, "sample")) << r.output;
  EXPECT_FALSE(fs::exists(kTmp + "/out"));
}

TEST_F(QuantizeErrors, NanLearningRatesAreRefusedBeforeAnyWork) {
  for (const char* opt : {"--lr", "--minmax-lr"}) {
    const Result r = run("quantize " + kModel + " -o " + kTmp + "/out --iters 2 --nsamples 2 --seqlen 16 " + opt +
                         " nan");
    EXPECT_NE(r.status, 0) << r.output;  // refused when the options are read (CLI11's usage status)
    EXPECT_TRUE(has(r, std::string(opt) + ": expected a positive number, found nan")) << r.output;
    EXPECT_FALSE(fs::exists(kTmp + "/out"));
  }
}

TEST_F(QuantizeErrors, SeqlenPastTheContextIsAWarning) {
  const Result r = run("quantize " + kModel + " -o " + kTmp + "/out --iters 1 --nsamples 1 --seqlen 2100 "
                       "--batch-size 1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r, "warning: --seqlen 2100 exceeds the model's max_position_embeddings (2048)")) << r.output;
}

TEST_F(QuantizeErrors, UnsupportedArchitecture) {
  fs::create_directories(kTmp + "/llama");
  std::ofstream(kTmp + "/llama/config.json") << R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10})";
  const Result r = run("quantize " + kTmp + "/llama -o " + kTmp + "/out --rtn");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "unsupported architecture \"LlamaForCausalLM\"")) << r.output;
  EXPECT_FALSE(fs::exists(kTmp + "/out"));
}

TEST_F(QuantizeErrors, CorruptWeightsFile) {
  fs::create_directories(kTmp + "/corrupt");
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(kModel + "/" + f, kTmp + "/corrupt/" + f);
  std::ofstream(kTmp + "/corrupt/model.safetensors") << "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}";
  const Result r = run("quantize " + kTmp + "/corrupt -o " + kTmp + "/out --iters 2 --nsamples 2 --seqlen 16 "
                       "--batch-size 1 --dataset " + kModel + "/calibration.txt");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "model.safetensors")) << r.output;
  EXPECT_FALSE(fs::exists(kTmp + "/out"));
}

TEST_F(QuantizeErrors, UnwritableOutputLeavesNothing) {
  // The output's parent is a regular file: no directory can be created there (also for root).
  std::ofstream(kTmp + "/file") << "x";
  const Result r = run("quantize " + kModel + " -o " + kTmp + "/file/out --iters 2 --nsamples 2 --seqlen 16 "
                       "--batch-size 1 --dataset " + kModel + "/calibration.txt");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, kTmp + "/file/out")) << r.output;
  const Result rtn = run("quantize " + kModel + " -o " + kTmp + "/file/out --rtn");
  EXPECT_EQ(rtn.status, 1) << rtn.output;
  EXPECT_TRUE(has(rtn, kTmp + "/file/out")) << rtn.output;
}

TEST_F(QuantizeErrors, ExistingOutputIsNotReplacedWithoutOverwrite) {
  fs::create_directories(kTmp + "/out");
  std::ofstream(kTmp + "/out/keep") << "precious";
  const Result r = run("quantize " + kModel + " -o " + kTmp + "/out --rtn");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(has(r, "exists")) << r.output;
  EXPECT_TRUE(fs::exists(kTmp + "/out/keep"));
}

TEST_F(QuantizeErrors, AsymmetricNeedsTheGptqLayout) {
  const Result r = run("quantize " + kModel + " -o " + kTmp + "/out --asym --iters 2 --nsamples 2 --seqlen 16 "
                       "--batch-size 1 --dataset " + kModel + "/calibration.txt");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "auto_gptq")) << r.output;
}

}  // namespace
