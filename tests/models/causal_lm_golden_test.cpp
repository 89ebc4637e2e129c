// Causal LMs of every registered decoder architecture against transformers: logits, per-layer hidden states and
// a 32-token greedy continuation, for BF16 checkpoints and W4A16 ones in the auto_round and auto_gptq formats.
// Fixtures: tests/data/qwen3 and tests/data/qwen2 (tools/make_qwen3_fixtures.py, tools/make_qwen2_fixtures.py).
// Each runs with F32 activations (rel. error ≤ 1e-3) and with BF16 activations (≤ 3e-2: bf16 keeps 8 bits of
// mantissa, ~4e-3 per rounding, compounded over the layers), which shows the model code names no dtype. In a
// CUDA build every case also runs on the GPU (skipped where there is none): same fixtures, same bounds.
#include <gtest/gtest.h>

#include "support/rel_error.h"
#include "support/source_dir.h"

#include <cmath>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "backends/cpu/cpu_backend.h"
#include "models/registry.h"
#ifdef OMNI_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_runtime_info.h"
#endif

namespace omni {
namespace {

std::string data_dir() { return testing_support::source_dir() + "/tests/data/"; }

struct Case {
  std::string fixture;  // under tests/data/
  DType activations;
  bool cuda = false;
};

std::string case_name(const Case& c) {
  std::string n = c.fixture + "_" + std::string(dtype_name(c.activations)) + (c.cuda ? "_cuda" : "");
  for (char& ch : n)
    if (ch == '-' || ch == '/') ch = '_';
  return n;
}

// Bounds from the agreement measured on 2026-12-01 (AMD EPYC AVX2 CPU and an H200), worst case per kind with a
// margin of 3-4x: f32 activations with 16-bit weights ≤ 1.15e-6 (bound 5e-6), with W4A16 weights ≤ 3.5e-6 (the
// CPU's int4 kernel sums in another order than torch; bound 1e-5); bf16 activations ≤ 1.3e-2 (bound 3e-2). (A
// 10x misread rms_norm_eps moves qwen3/tied's logits by only 2e-6 — below f32 noise at these activations — so it
// is registry_test's parsed-config check that guards the field, not this bound.)
double tolerance(const Case& c) {
  if (c.activations != DType::F32) return 3e-2;
  return c.fixture.find("w4a16") != std::string::npos ? 1e-5 : 5e-6;
}

using testing_support::rel_error;

// The case's backend, or null (after a GTEST_SKIP) when it needs a GPU that this machine lacks.
std::unique_ptr<Backend> backend_for(const Case& c) {
  if (!c.cuda) return std::make_unique<CpuBackend>(c.activations);
#ifdef OMNI_HAVE_CUDA
  if (cuda::device_count() > 0) return std::make_unique<cuda::CudaBackend>(0, c.activations);
#endif
  return nullptr;
}

std::vector<int32_t> ids_of(const Tensor& t) {
  return std::vector<int32_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

class CausalLmGolden : public ::testing::TestWithParam<Case> {};

TEST_P(CausalLmGolden, LogitsAndHiddenStatesMatchTransformers) {
  const std::string dir = data_dir() + GetParam().fixture;
  const std::string name = case_name(GetParam());
  const std::unique_ptr<Backend> backend = backend_for(GetParam());
  if (!backend) GTEST_SKIP() << name << ": no CUDA device on this machine";
  auto model = open_causal_lm(dir, *backend);
  auto golden = SafetensorsFile::open(dir + "/golden.safetensors");
  const std::vector<int32_t> ids = ids_of(golden->tensor("input_ids"));
  const auto T = static_cast<int64_t>(ids.size());
  const int64_t L = model->info().num_layers, D = model->info().hidden_size;

  KvCache cache = model->new_cache(T);
  std::vector<Tensor> hidden;
  const Tensor logits = model->forward(ids, cache, /*all_logits=*/true, &hidden);
  const Tensor ref_logits = golden->tensor("logits");
  ASSERT_EQ(logits.shape(), ref_logits.shape());
  const double e = rel_error(logits.data<float>(), ref_logits.data<float>(), logits.numel());
  EXPECT_LE(e, tolerance(GetParam())) << name << ": logits";
  std::cout << "[ " << name << " ] logits rel error " << e << "\n";

  const Tensor ref_hidden = golden->tensor("hidden_states");
  ASSERT_EQ(static_cast<int64_t>(hidden.size()), L + 1);
  ASSERT_EQ(ref_hidden.shape(), (Shape{L + 1, T, D}));
  for (int64_t l = 0; l <= L; ++l) {
    const double eh = rel_error(hidden[static_cast<size_t>(l)].data<float>(),
                                ref_hidden.data<float>() + l * T * D, T * D);
    EXPECT_LE(eh, tolerance(GetParam())) << name << ": hidden state " << l;
  }
}

// Greedy decoding with the KV cache reproduces the reference's continuation (which re-ran the full sequence
// each step). A position where the reference's top-2 logits are within 1e-4 may legitimately differ; the test
// says so and continues with the reference's token, so every step is compared.
// Greedy ids are compared with F32 activations (bf16 rounding legitimately flips near-ties).
class CausalLmGreedy : public ::testing::TestWithParam<Case> {};

TEST_P(CausalLmGreedy, GreedyContinuationMatches) {
  const std::string dir = data_dir() + GetParam().fixture;
  const std::string name = case_name(GetParam());
  const std::unique_ptr<Backend> backend = backend_for(GetParam());
  if (!backend) GTEST_SKIP() << name << ": no CUDA device on this machine";
  auto model = open_causal_lm(dir, *backend);
  auto golden = SafetensorsFile::open(dir + "/golden.safetensors");
  const std::vector<int32_t> prompt = ids_of(golden->tensor("input_ids"));
  const std::vector<int32_t> want = ids_of(golden->tensor("greedy_ids"));
  const Tensor gap = golden->tensor("greedy_top2_gap");

  KvCache cache = model->new_cache(static_cast<int64_t>(prompt.size() + want.size()));
  Tensor logits = model->forward(prompt, cache, false);
  int near_ties = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const float* l = logits.data<float>();
    int32_t best = 0;
    for (int64_t v = 1; v < logits.dim(-1); ++v)
      if (l[v] > l[best]) best = static_cast<int32_t>(v);
    if (best != want[i]) {
      // A near-tie may legitimately go the other way; then the reference's token is fed (teacher forcing) so
      // the remaining steps are still compared. More than two such steps would mean something is off.
      ASSERT_LT(gap.data<float>()[i], 1e-4f) << name << ": greedy step " << i << " gave " << best << ", reference "
                                              << want[i];
      std::cout << "[ " << name << " ] step " << i << " differs at a near-tie (reference top-2 gap "
                << gap.data<float>()[i] << "); continuing with the reference's token\n";
      ASSERT_LE(++near_ties, 2) << name;
      best = want[i];
    }
    logits = model->forward(std::span<const int32_t>(&best, 1), cache, false);
  }
}

std::vector<Case> cases(std::vector<DType> activations) {
  std::vector<Case> out;
  for (const char* f : {"qwen3/tied", "qwen3/untied", "qwen3/tied-w4a16", "qwen3/untied-w4a16",
                        "qwen3/untied-w4a16-gptq", "qwen2/bias", "qwen2/bias-w4a16"})
    for (DType d : activations) {
      out.push_back({f, d, false});
#ifdef OMNI_HAVE_CUDA
      out.push_back({f, d, true});
#endif
    }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CausalLmGolden, ::testing::ValuesIn(cases({DType::F32, DType::BF16})),
                         [](const auto& param_info) { return case_name(param_info.param); });
INSTANTIATE_TEST_SUITE_P(Fixtures, CausalLmGreedy, ::testing::ValuesIn(cases({DType::F32})),
                         [](const auto& param_info) { return case_name(param_info.param); });

}  // namespace
}  // namespace omni
