// The omniround binary end to end: exit codes, streamed output, speed report, and one-line errors for bad input.
#include <gtest/gtest.h>

#include "support/run_omniround.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace {

using Result = omni::testing_support::CommandResult;
Result run(const std::string& args) { return omni::testing_support::run_omniround(args); }

const std::string kSrc = OMNI_SOURCE_DIR;
const std::string kModel = kSrc + "/models/tiny-qwen3";

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The N of the "generated: N tokens" report, or -1 when the report is missing.
long generated_tokens(const std::string& out) {
  const size_t at = out.find("generated: ");
  return at == std::string::npos ? -1 : std::stol(out.substr(at + 11));
}

// What was streamed after the prompt, before the stats line (stdout comes first: the stats go to stderr after it).
std::string continuation(const std::string& out, const std::string& prompt) {
  const size_t p = out.find(prompt), s = out.find("prompt: ");
  if (p == std::string::npos || s == std::string::npos || s < p + prompt.size()) return "";
  return out.substr(p + prompt.size(), s - p - prompt.size());
}

TEST(Cli, GenerateStreamsTextAndReportsSpeed) {
  const Result r = run("generate " + kModel + " -p 'In the beginning' -n 12 --threads 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "In the beginning")) << r.output;
  EXPECT_TRUE(contains(r.output, "prefill")) << r.output;
  EXPECT_TRUE(contains(r.output, "decode")) << r.output;
  EXPECT_TRUE(contains(r.output, "tokens/s")) << r.output;
  // Tokens were generated and streamed, not just the prompt echoed: -n 12 with greedy decoding on this model runs
  // to the limit (no eos within 12 tokens), and the streamed continuation is text.
  EXPECT_EQ(generated_tokens(r.output), 12) << r.output;
  EXPECT_TRUE(contains(r.output, "stopped: max tokens")) << r.output;
  EXPECT_GE(continuation(r.output, "In the beginning").size(), 12u) << r.output;
}

// -n past the context (up to the largest int64) generates until the context is full or a stop token, instead of
// overflowing prompt + n into a negative KV cache size (issue 7, finding 2).
TEST(Cli, HugeTokenCountsStopAtTheContext) {
  for (const char* n : {"4611686018427387904", "9223372036854775807"}) {
    // "hi" meets a stop token within ~30 greedy tokens on this model, so the run is short.
    const Result r = run("generate " + kModel + " -p hi -n " + n + " --threads 2");
    ASSERT_EQ(r.status, 0) << n << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "stopped: ")) << n << "\n" << r.output;
    EXPECT_GE(generated_tokens(r.output), 1) << n << "\n" << r.output;
  }
}

TEST(Cli, SeededSamplingIsReproducibleAndChatWorks) {
  const std::string args = "generate " + kModel + " -p 'The wise man' -n 16 --temperature 0.8 --top-k 40 --top-p 0.95 --seed 3";
  const Result a = run(args), b = run(args);
  ASSERT_EQ(a.status, 0) << a.output;
  auto text = [](const std::string& out) { return out.substr(0, out.find("prompt:")); };
  EXPECT_EQ(text(a.output), text(b.output));
  EXPECT_GE(generated_tokens(a.output), 1) << a.output;
  const Result c = run("generate " + kModel + " -p 'What is a tree?' -n 16 --chat");
  EXPECT_EQ(c.status, 0) << c.output;
  // The chat prompt is not echoed; what is printed before the stats is the assistant's answer.
  EXPECT_GE(generated_tokens(c.output), 1) << c.output;
  EXPECT_FALSE(contains(c.output, "<|im_start|>")) << c.output;
}

TEST(Cli, QuantizeRtnThenGenerateAndInspect) {
  const std::string out = std::string(OMNI_BINARY_DIR) + "/cli_test_w4a16";
  std::filesystem::remove_all(out);
  const Result q = run("quantize " + kModel + " -o " + out + " --rtn");
  ASSERT_EQ(q.status, 0) << q.output;
  EXPECT_TRUE(contains(q.output, "quantized 56 linear layers")) << q.output;
  const Result again = run("quantize " + kModel + " -o " + out + " --rtn");
  EXPECT_NE(again.status, 0);
  EXPECT_TRUE(contains(again.output, "exists")) << again.output;
  const Result g = run("generate " + out + " -p 'In the beginning' -n 8");
  ASSERT_EQ(g.status, 0) << g.output;
  EXPECT_TRUE(contains(g.output, "56 quantized / 0 dense")) << g.output;
  const Result i = run("inspect " + out);
  ASSERT_EQ(i.status, 0) << i.output;
  EXPECT_TRUE(contains(i.output, "auto-round W4 group 128 sym")) << i.output;
}

TEST(Cli, BadInputGivesOneClearError) {
  const Result missing = run("generate " + kSrc + "/tests/data/config -p hi");
  EXPECT_EQ(missing.status, 1);
  EXPECT_TRUE(contains(missing.output, "omniround: error:")) << missing.output;
  EXPECT_TRUE(contains(missing.output, "config.json")) << missing.output;

  const Result no_prompt = run("generate " + kModel);
  EXPECT_NE(no_prompt.status, 0);
  EXPECT_TRUE(contains(no_prompt.output, "prompt")) << no_prompt.output;

  const Result bad_flag = run("generate " + kModel + " -p hi --top-p 3");
  EXPECT_NE(bad_flag.status, 0);

  const Result no_dir = run("inspect /nonexistent/model");
  EXPECT_NE(no_dir.status, 0);
  EXPECT_TRUE(contains(no_dir.output, "/nonexistent/model")) << no_dir.output;
}

// Issue 7, finding 9: each message names the option or command, what was expected and what was found.
TEST(Cli, OptionAndCommandMessagesSayWhatWasExpected) {
  Result r = run("frobnicate");
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(contains(r.output, "unknown command 'frobnicate'; expected one of: generate, inspect, quantize, eval, bench"))
      << r.output;
  r = run("--threads 2 frobnicate x");
  EXPECT_TRUE(contains(r.output, "unknown command 'frobnicate'")) << r.output;

  // Refused when the options are read, before the model loads or anything is printed.
  r = run("generate " + kModel + " -p hi --top-p 0");
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(contains(r.output, "--top-p: expected a number in (0, 1], found 0")) << r.output;
  EXPECT_FALSE(contains(r.output, "prefill")) << r.output;
  r = run("quantize " + kModel + " -o /tmp/never-written --lr -1");
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(contains(r.output, "--lr: expected a positive number, found -1")) << r.output;
  EXPECT_LT(r.output.size(), 400u) << "no 309-digit bound: " << r.output;
  r = run("generate " + kModel + " -p hi --temperature nan");
  EXPECT_TRUE(contains(r.output, "--temperature: expected a number in [0, 100], found nan")) << r.output;
  r = run("eval " + kModel + " --dataset " + kModel + "/heldout.txt --ctx 1");
  EXPECT_TRUE(contains(r.output, "--ctx: expected a number in [2, 1048576], found 1")) << r.output;
}

}  // namespace
