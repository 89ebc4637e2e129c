#include "pipelines/generate.h"

#include <gtest/gtest.h>

#include "backends/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "models/registry.h"

namespace omni {
namespace {

const std::string kData = std::string(OMNI_SOURCE_DIR) + "/tests/data/qwen3/";

std::vector<int32_t> prompt_of(const std::string& dir) {
  const Tensor t = SafetensorsFile::open(dir + "/golden.safetensors")->tensor("input_ids");
  return std::vector<int32_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

TEST(Generate, GreedyMatchesGoldenAndStreams) {
  const std::string dir = kData + "untied-w4a16";
  auto model = open_causal_lm(dir, cpu_backend());
  const Tensor want = SafetensorsFile::open(dir + "/golden.safetensors")->tensor("greedy_ids");
  GenerateOptions opt;
  opt.max_new_tokens = 32;
  std::vector<int32_t> streamed, ids;
  const GenerateStats s = generate(*model, prompt_of(dir), opt, [&](int32_t id) { streamed.push_back(id); }, &ids);
  EXPECT_EQ(s.generated_tokens, 32);
  EXPECT_EQ(s.stop_reason, "max tokens");
  EXPECT_EQ(streamed, ids);
  EXPECT_EQ(ids, std::vector<int32_t>(want.data<int32_t>(), want.data<int32_t>() + 32));
  EXPECT_GT(s.prefill_tokens_per_second(), 0);
  EXPECT_GT(s.decode_tokens_per_second(), 0);
}

TEST(Generate, StopsAtStopTokenAndSeedsAreReproducible) {
  const std::string dir = kData + "tied";
  auto model = open_causal_lm(dir, cpu_backend());
  const std::vector<int32_t> prompt = prompt_of(dir);
  GenerateOptions opt;
  opt.max_new_tokens = 40;
  opt.sampling.temperature = 1.0f;
  opt.sampling.top_p = 0.9f;
  opt.sampling.seed = 7;
  std::vector<int32_t> a, b, c;
  generate(*model, prompt, opt, [](int32_t) {}, &a);
  generate(*model, prompt, opt, [](int32_t) {}, &b);
  opt.sampling.seed = 8;
  generate(*model, prompt, opt, [](int32_t) {}, &c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);

  // Make the 5th sampled token a stop token: generation ends right after emitting it.
  opt.sampling.seed = 7;
  opt.stop_ids = {a[4]};
  std::vector<int32_t> d;
  const GenerateStats s = generate(*model, prompt, opt, [](int32_t) {}, &d);
  EXPECT_EQ(s.stop_reason, "stop token");
  ASSERT_LE(d.size(), 5u);
  EXPECT_EQ(d.back(), a[4]);
}

TEST(Generate, RejectsEmptyPromptAndStopsWhenContextIsFull) {
  auto model = open_causal_lm(kData + "tied", cpu_backend());
  GenerateOptions opt;
  EXPECT_THROW(generate(*model, std::vector<int32_t>{}, opt, [](int32_t) {}), Error);
  const int64_t ctx = model->info().max_positions;
  std::vector<int32_t> prompt(static_cast<size_t>(ctx - 3), 5);
  opt.max_new_tokens = 100;
  std::vector<int32_t> out;
  const GenerateStats s = generate(*model, prompt, opt, [](int32_t) {}, &out);
  EXPECT_EQ(s.stop_reason, "context full");
  EXPECT_EQ(out.size(), 4u);  // 3 free cache slots + the token sampled from the last forward
}

}  // namespace
}  // namespace omni
