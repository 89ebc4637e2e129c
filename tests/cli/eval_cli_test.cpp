// `omniround eval` end to end on the shipped tiny model and an RTN copy of it, bounded with --max-tokens so it
// runs in seconds: the scoreboard table, the JSON numbers, their consistency, and one-line errors.
#include <gtest/gtest.h>

#include "support/run_omniround.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

using Result = omni::testing_support::CommandResult;
Result run(const std::string& args) { return omni::testing_support::run_omniround(args); }

const std::string kSrc = OMNI_SOURCE_DIR;
const std::string kBin = OMNI_BINARY_DIR;
const std::string kModel = kSrc + "/models/tiny-qwen3";
const std::string kHeldout = kModel + "/heldout.txt";

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    quantized_ = kBin + "/eval_cli_test_rtn";
    std::filesystem::remove_all(quantized_);
    const Result q = run("quantize " + kModel + " -o " + quantized_ + " --rtn");
    ASSERT_EQ(q.status, 0) << q.output;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(quantized_); }
  static std::string quantized_;
};
std::string EvalCli::quantized_;

TEST_F(EvalCli, PerplexityOfTheBf16Model) {
  const std::string json = kBin + "/eval_cli_test_bf16.json";
  std::filesystem::remove(json);
  const Result r = run("eval " + kModel + " --dataset " + kHeldout + " --max-tokens 1100 --json " + json + " --threads 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "| model | PPL | ΔPPL | mean KLD | same top p % | tokens |")) << r.output;
  EXPECT_TRUE(contains(r.output, "window 2/2")) << r.output;  // progress line
  EXPECT_TRUE(contains(r.output, "2 windows × 512 tokens (1022 predicted tokens)")) << r.output;
  const nlohmann::json j = read_json(json);
  EXPECT_EQ(j["tokens"], 1022);
  EXPECT_EQ(j["windows"], 2);
  const double ppl = j["ppl"];
  // The tiny model's held-out perplexity is about 38 over the whole file; its first 1022 tokens are similar.
  EXPECT_GT(ppl, 15.0);
  EXPECT_LT(ppl, 80.0);
  EXPECT_GT(j["ppl_stderr"].get<double>(), 0.0);
  EXPECT_FALSE(j.contains("mean_kld"));
}

TEST_F(EvalCli, RtnCopyAgainstTheBf16Reference) {
  const std::string json = kBin + "/eval_cli_test_rtn.json", bf16_json = kBin + "/eval_cli_test_ref.json";
  std::filesystem::remove(json);
  const Result r = run("eval " + quantized_ + " --dataset " + kHeldout + " --reference " + kModel +
                       " --max-tokens 1100 --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "(reference)")) << r.output;
  EXPECT_TRUE(contains(r.output, "KLD: median")) << r.output;
  const nlohmann::json j = read_json(json);
  EXPECT_EQ(j["tokens"], 1022);
  const double kld = j["mean_kld"], same = j["same_top_p"], ppl = j["ppl"], ref_ppl = j["reference_ppl"];
  EXPECT_GT(kld, 0.0);    // 4-bit weights change the distribution...
  EXPECT_LT(kld, 0.5);    // ...but not beyond recognition
  EXPECT_GT(same, 0.6);
  EXPECT_LT(same, 1.0);
  EXPECT_NEAR(j["delta_ppl"].get<double>(), ppl - ref_ppl, 1e-9 * ppl);

  // The reference's PPL is the BF16 model's own PPL on the same tokens.
  const Result b = run("eval " + kModel + " --dataset " + kHeldout + " --max-tokens 1100 --json " + bf16_json);
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_NEAR(read_json(bf16_json)["ppl"].get<double>(), ref_ppl, 1e-9 * ref_ppl);
}

TEST_F(EvalCli, ModelAgainstItselfAndJsonlDataset) {
  const std::string jsonl = kBin + "/eval_cli_test.jsonl";
  {
    std::ifstream in(kHeldout);
    std::ofstream out(jsonl);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out << nlohmann::json{{"text", line}}.dump() << "\n";
  }
  const std::string json = kBin + "/eval_cli_test_self.json", plain_json = kBin + "/eval_cli_test_plain.json";
  const Result r = run("eval " + kModel + " --dataset " + jsonl + " --reference " + kModel +
                       " --ctx 256 --max-windows 2 --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json j = read_json(json);
  EXPECT_EQ(j["tokens"], 510);
  EXPECT_EQ(j["mean_kld"].get<double>(), 0.0);
  EXPECT_EQ(j["same_top_p"].get<double>(), 1.0);
  // The JSONL copy of the file gives the same tokens, hence the same perplexity, as the plain text.
  const Result p = run("eval " + kModel + " --dataset " + kHeldout + " --ctx 256 --max-windows 2 --json " + plain_json);
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_EQ(read_json(plain_json)["ppl"].get<double>(), j["ppl"].get<double>());
  std::filesystem::remove(jsonl);
}

TEST_F(EvalCli, BadInputGivesOneClearError) {
  const std::string broken = kBin + "/eval_cli_test_broken.jsonl";
  std::ofstream(broken) << "{\"text\": \"fine\"}\n{\"text\": nope}\n";
  const Result b = run("eval " + kModel + " --dataset " + broken);
  EXPECT_EQ(b.status, 1);
  EXPECT_TRUE(contains(b.output, "omniround: error:")) << b.output;
  EXPECT_TRUE(contains(b.output, broken)) << b.output;
  EXPECT_TRUE(contains(b.output, "line 2")) << b.output;
  std::filesystem::remove(broken);

  const Result small = run("eval " + kModel + " --dataset " + kHeldout + " --max-tokens 100");
  EXPECT_EQ(small.status, 1);
  EXPECT_TRUE(contains(small.output, "fewer than one evaluation window of 512")) << small.output;

  const Result missing = run("eval " + kModel + " --dataset /nonexistent/data.txt");
  EXPECT_NE(missing.status, 0);
  EXPECT_TRUE(contains(missing.output, "/nonexistent/data.txt")) << missing.output;

  const Result no_dataset = run("eval " + kModel);
  EXPECT_NE(no_dataset.status, 0);
  EXPECT_TRUE(contains(no_dataset.output, "dataset")) << no_dataset.output;

  const Result bad_ref = run("eval " + kModel + " --dataset " + kHeldout + " --reference " + kSrc +
                             "/tests/data/qwen3/untied --max-tokens 600");
  EXPECT_EQ(bad_ref.status, 1);
  EXPECT_TRUE(contains(bad_ref.output, "vocabulary")) << bad_ref.output;
}

}  // namespace
