// Bad input to `omniround quantize` gives one clear error line and leaves no output that looks complete.
#include <gtest/gtest.h>

#include "support/run_omniround.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
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

// --calib-tokens FILE: n pre-tokenized windows of `len` ids (below the tiny model's 8192), one JSON object a line.
std::string write_token_windows(const std::string& path, int n, int len, int short_line = -1) {
  std::ofstream f(path);
  for (int i = 0; i < n; ++i) {
    f << "{\"input_ids\": [";
    const int count = i + 1 == short_line ? len - 1 : len;
    for (int k = 0; k < count; ++k) f << (k ? ", " : "") << (i * 37 + k * 11) % 8000;
    f << "]}\n";
  }
  return path;
}

TEST_F(QuantizeErrors, CalibTokensAreUsedAndReported) {
  const std::string tokens = write_token_windows(kTmp + "/windows.jsonl", 4, 32);
  const Result r = run("quantize " + kModel + " -o " + kTmp + "/out --iters 2 --nsamples 2 --seqlen 32 "
                       "--batch-size 1 --calib-tokens " + tokens);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r, "calibration: token windows " + tokens + ", 2 samples of 32 tokens (first 2 of 4 in the file)"))
      << r.output;
  EXPECT_TRUE(has(r, "64 calibration tokens")) << r.output;
  EXPECT_TRUE(fs::exists(kTmp + "/out/config.json"));
}

TEST_F(QuantizeErrors, BadCalibTokensNameFileAndLine) {
  const std::string tokens = write_token_windows(kTmp + "/short.jsonl", 4, 32, /*short_line=*/3);
  const Result r = run("quantize " + kModel + " -o " + kTmp + "/out --iters 2 --nsamples 2 --seqlen 32 "
                       "--batch-size 1 --calib-tokens " + tokens);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "omniround: error:")) << r.output;
  EXPECT_TRUE(has(r, tokens + " line 3: 31 ids, but --seqlen is 32")) << r.output;
  EXPECT_FALSE(fs::exists(kTmp + "/out"));
  // Too few windows for --nsamples.
  const std::string few = write_token_windows(kTmp + "/few.jsonl", 2, 32);
  const Result f = run("quantize " + kModel + " -o " + kTmp + "/out --iters 2 --nsamples 3 --seqlen 32 "
                       "--batch-size 1 --calib-tokens " + few);
  EXPECT_EQ(f.status, 1) << f.output;
  EXPECT_TRUE(has(f, few + " holds 2 windows, but 3 samples were asked for")) << f.output;
  // Token windows replace the dataset and the policy: giving both is a usage error.
  for (const std::string& other : {"--dataset " + kModel + "/calibration.txt", std::string("--calib-policy skip")}) {
    const Result u = run("quantize " + kModel + " -o " + kTmp + "/out --iters 2 --nsamples 2 --seqlen 32 "
                         "--calib-tokens " + tokens + " " + other);
    EXPECT_NE(u.status, 0) << u.output;
    EXPECT_TRUE(has(u, "excludes")) << u.output;
  }
  EXPECT_FALSE(fs::exists(kTmp + "/out"));
}

// Sizes from options are checked before they allocate, without forming products that overflow (finding 2): an
// enormous --nsamples was a raw "vector::reserve", --batch-size past --nsamples failed only after calibration.
TEST_F(QuantizeErrors, SizesFromOptionsAreBoundedBeforeAnyWork) {
  Result r = run("quantize " + kModel + " -o " + kTmp + "/out --iters 1 --seqlen 4 --nsamples 4611686018427387904");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "--nsamples 4611686018427387904 × --seqlen 4 calibration tokens exceed the limit")) << r.output;
  r = run("quantize " + kModel + " -o " + kTmp + "/out --iters 1 --seqlen 16 --nsamples 4 "
          "--batch-size 9223372036854775807");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "--batch-size 9223372036854775807 exceeds --nsamples 4")) << r.output;
  EXPECT_FALSE(has(r, "calibration:")) << "refused only after building the calibration set:\n" << r.output;
  EXPECT_FALSE(fs::exists(kTmp + "/out"));
  EXPECT_FALSE(fs::exists(kTmp + "/out.partial"));
}

// A config that disagrees with its checkpoint (finding 8): every quantizer refuses it before writing, as the
// loader refuses it at inference, instead of writing a model that runs half its layers or cannot be loaded.
TEST(QuantizeConfigMismatch, EveryMethodRefusesItBeforeWriting) {
  const std::string dir = kTmp + "-mismatch/layers4";
  fs::remove_all(kTmp + "-mismatch");
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kModel))
    if (e.is_regular_file()) fs::copy_file(e.path(), dir + "/" + e.path().filename().string());
  std::ifstream in(dir + "/config.json");
  std::string cfg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string from = "\"num_hidden_layers\": 8";
  ASSERT_NE(cfg.find(from), std::string::npos);
  cfg.replace(cfg.find(from), from.size(), "\"num_hidden_layers\": 4");
  std::ofstream(dir + "/config.json") << cfg;
  const std::string out = kTmp + "-mismatch/out";
  for (const char* method :
       {" --rtn", " --rtn-opt --nsamples 2 --seqlen 16 --batch-size 2",
        " --iters 2 --nsamples 2 --seqlen 16 --batch-size 2"}) {
    const Result r = run("quantize " + dir + " -o " + out + method);
    EXPECT_EQ(r.status, 1) << method << "\n" << r.output;
    EXPECT_TRUE(has(r, "model.layers.4.")) << method << "\n" << r.output;
    EXPECT_TRUE(has(r, "num_hidden_layers 4")) << method << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out)) << method;
    EXPECT_FALSE(fs::exists(out + ".partial")) << method;
  }
}

}  // namespace
