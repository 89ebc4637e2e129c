// Decode steps recorded as CUDA graphs (DecoderLm over Backend::begin_capture / replay) give the same greedy
// continuation as eager execution, token for token, over 48 steps, with F32 and BF16 activations, for BF16 and
// W4A16 checkpoints; a second continuation with another cache capacity records a new graph. Needs a GPU: skipped
// elsewhere (and in a CPU-only build).
#include <gtest/gtest.h>

#include "support/rel_error.h"
#include "support/source_dir.h"

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "models/registry.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_runtime_info.h"

namespace omni {
namespace {

struct Case {
  std::string fixture;  // under tests/data/
  DType activations;
};

std::string case_name(const Case& c) {
  std::string n = c.fixture + "_" + std::string(dtype_name(c.activations));
  for (char& ch : n)
    if (ch == '-' || ch == '/') ch = '_';
  return n;
}

int32_t argmax(const Tensor& logits) {
  const float* l = logits.data<float>();
  int32_t best = 0;
  for (int64_t v = 1; v < logits.dim(-1); ++v)
    if (l[v] > l[best]) best = static_cast<int32_t>(v);
  return best;
}

// Greedy ids and the logits of every step: a prefill of `prompt`, then `steps` single-token decode steps.
struct Decoded {
  std::vector<int32_t> ids;
  std::vector<Tensor> logits;
};
Decoded greedy(CausalLM& model, const std::vector<int32_t>& prompt, int64_t steps, int64_t capacity) {
  KvCache cache = model.new_cache(capacity);
  Decoded r;
  Tensor logits = model.forward(prompt, cache, false);
  for (int64_t i = 0; i < steps; ++i) {
    r.logits.push_back(logits);
    const int32_t next = argmax(logits);
    r.ids.push_back(next);
    logits = model.forward(std::span<const int32_t>(&next, 1), cache, false);
  }
  return r;
}

class DecodeGraph : public ::testing::TestWithParam<Case> {};

TEST_P(DecodeGraph, GreedyEqualsEager) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  const std::string name = case_name(GetParam());
  const std::string dir = testing_support::source_dir() + "/tests/data/" + GetParam().fixture;
  cuda::CudaBackend graphs(0, GetParam().activations), eager(0, GetParam().activations);
  graphs.set_capture_enabled(true);  // whatever OMNI_CUDA_GRAPHS says
  eager.set_capture_enabled(false);
  auto model_g = open_causal_lm(dir, graphs);
  auto model_e = open_causal_lm(dir, eager);
  auto golden = SafetensorsFile::open(dir + "/golden.safetensors");
  const Tensor ids = golden->tensor("input_ids");
  const std::vector<int32_t> prompt(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel());
  const auto P = static_cast<int64_t>(prompt.size());

  // Two continuations: the second from a shorter prompt into a cache of another capacity (a new recording).
  const int64_t steps = 48;
  const std::vector<std::vector<int32_t>> prompts = {prompt, std::vector<int32_t>(prompt.begin(), prompt.begin() + 3)};
  const std::vector<int64_t> capacities = {P + steps, 3 + steps + 5};
  for (size_t round = 0; round < prompts.size(); ++round) {
    const Decoded g = greedy(*model_g, prompts[round], steps, capacities[round]);
    const Decoded e = greedy(*model_e, prompts[round], steps, capacities[round]);
    ASSERT_EQ(g.ids.size(), e.ids.size());
    double worst = 0;
    for (size_t i = 0; i < g.ids.size(); ++i) {
      const double err = testing_support::rel_error(g.logits[i].data<float>(), e.logits[i].data<float>(),
                                                    g.logits[i].numel());
      worst = std::max(worst, err);
      EXPECT_LE(err, 1e-5) << name << " round " << round << ": logits of step " << i;
      ASSERT_EQ(g.ids[i], e.ids[i]) << name << " round " << round << ": greedy step " << i;
    }
    std::cout << "[ " << name << " ] round " << round << ": " << steps
              << " greedy steps equal; worst logits rel difference graph vs eager " << worst << "\n";
  }
  std::cout << "[ " << name << " ] layouts " << model_g->load_report().layouts_summary() << "; graphs "
            << graphs.captures() << ", replays " << graphs.replays() << ", failed captures "
            << graphs.capture_failures() << " " << graphs.last_capture_failure() << "\n";
  // Per round: step 1 eager (warm), step 2 recorded then replayed, every later step replayed.
  EXPECT_EQ(graphs.capture_failures(), 0) << graphs.last_capture_failure();
  EXPECT_EQ(graphs.captures(), 2);
  EXPECT_EQ(graphs.replays(), 2 * (steps - 1));
  EXPECT_EQ(eager.captures(), 0);
  EXPECT_EQ(eager.replays(), 0);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* f : {"qwen3/untied", "qwen3/tied-w4a16", "qwen3/untied-w4a16-gptq", "qwen2/bias",
                        "qwen2/bias-w4a16"})
    for (DType d : {DType::F32, DType::BF16}) out.push_back({f, d});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DecodeGraph, ::testing::ValuesIn(cases()),
                         [](const auto& param_info) { return case_name(param_info.param); });

}  // namespace
}  // namespace omni
