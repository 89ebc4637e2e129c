// The batched forward (nn/causal_lm.h): tokens of several sequences in one batch, each with its KV cache slot and
// position, give the logits of running each sequence on its own. Checked on a prefill of 8 prompts of different
// lengths, then one decode step of all 8 together, for a BF16 and a W4A16 checkpoint of two architectures.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/w4a16_matmul.h"
#include "core/error.h"
#include "support/error_of.h"
#include "models/registry.h"

namespace omni {
namespace {

const std::string kData = std::string(OMNI_SOURCE_DIR) + "/tests/data/";

// max |a − b| / max |b| over all entries.
double max_rel_diff(const float* a, const float* b, int64_t n) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

std::vector<std::vector<int32_t>> prompts(int64_t vocab) {
  std::vector<std::vector<int32_t>> p;
  const int lengths[8] = {5, 1, 12, 7, 3, 16, 9, 2};
  for (int s = 0; s < 8; ++s) {
    std::vector<int32_t> ids;
    for (int t = 0; t < lengths[s]; ++t) ids.push_back(static_cast<int32_t>((s * 131 + t * 17 + t * t * 3) % vocab));
    p.push_back(ids);
  }
  return p;
}

class BatchedForward : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchedForward, EqualsSingleSequenceForwards) {
  // The check is on batching (slots, positions, caches), to f32 rounding. W4A16's small batches round x to 16-bit
  // integers per row (w4a16_matmul.h) while large ones run the f32 GEMM, so a prompt alone and in a batch would
  // take different kernels; exact f32 activations make both the same arithmetic.
  set_w4a16_cpu_activations(W4A16Activations::F32);
  struct Restore {
    ~Restore() { set_w4a16_cpu_activations(W4A16Activations::Int16); }
  } restore;
  auto model = open_causal_lm(kData + GetParam(), cpu_backend());
  const int64_t V = model->info().vocab_size;
  const auto ps = prompts(V);
  const int64_t capacity = 32;

  // One sequence at a time, each in its own cache: every prompt token's logits, then one decode step.
  std::vector<Tensor> single_prefill, single_decode;
  for (const auto& p : ps) {
    KvCache cache = model->new_cache(capacity);
    single_prefill.push_back(model->forward(p, cache, /*all_logits=*/true));
    const int32_t next = static_cast<int32_t>((p.back() * 7 + 1) % V);
    single_decode.push_back(model->forward(std::span<const int32_t>(&next, 1), cache, false));
  }

  // All 8 prompts interleaved in one batch (tokens of different sequences alternate), one shared cache.
  KvCache cache = model->new_cache(capacity, 8);
  TokenBatch batch;
  std::vector<std::vector<int64_t>> row_of(8);
  for (size_t t = 0; t < 16; ++t)
    for (size_t s = 0; s < 8; ++s)
      if (t < ps[s].size()) {
        row_of[s].push_back(batch.size());
        batch.add(ps[s][t], static_cast<int32_t>(s), static_cast<int32_t>(t), true);
      }
  const Tensor logits = model->forward(batch, cache);
  ASSERT_EQ(logits.shape(), Shape({batch.size(), V}));
  double worst = 0;
  for (size_t s = 0; s < 8; ++s)
    for (size_t t = 0; t < ps[s].size(); ++t) {
      const double e = max_rel_diff(logits.data<float>() + row_of[s][t] * V,
                                    single_prefill[s].data<float>() + static_cast<int64_t>(t) * V, V);
      worst = std::max(worst, e);
      EXPECT_LE(e, 1e-5) << GetParam() << " sequence " << s << " token " << t;
    }
  for (size_t s = 0; s < 8; ++s) EXPECT_EQ(cache.length[s], static_cast<int64_t>(ps[s].size()));

  // One decode step of every sequence, in reverse slot order, logits of each.
  TokenBatch step;
  for (int s = 7; s >= 0; --s) {
    const auto& p = ps[static_cast<size_t>(s)];
    step.add(static_cast<int32_t>((p.back() * 7 + 1) % V), s, static_cast<int32_t>(p.size()), true);
  }
  const Tensor dec = model->forward(step, cache);
  for (int s = 7; s >= 0; --s) {
    const double e = max_rel_diff(dec.data<float>() + (7 - s) * V, single_decode[static_cast<size_t>(s)].data<float>(), V);
    worst = std::max(worst, e);
    EXPECT_LE(e, 1e-5) << GetParam() << " decode of sequence " << s;
  }
  std::cout << "[ " << GetParam() << " ] worst max-rel difference batched vs single: " << worst << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchedForward,
                         ::testing::Values("qwen3/untied", "qwen3/untied-w4a16", "qwen2/bias"),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           for (char& c : n)
                             if (c == '-' || c == '/') c = '_';
                           return n;
                         });

TEST(BatchedForward, RejectsTokensThatDoNotContinueTheirSequence) {
  auto model = open_causal_lm(kData + "qwen3/tied", cpu_backend());
  KvCache cache = model->new_cache(8, 2);
  auto expect_error = [&](const TokenBatch& b, const std::string& fragment) {
    testing_support::expect_error_containing([&] { model->forward(b, cache); }, {fragment});
  };
  TokenBatch gap;
  gap.add(1, 0, 0, true);
  gap.add(2, 0, 2, true);  // skips position 1
  expect_error(gap, "expected 1");
  TokenBatch slot;
  slot.add(1, 2, 0, true);
  expect_error(slot, "the cache has 2 slots");
  TokenBatch full;
  for (int t = 0; t < 9; ++t) full.add(1, 1, t, false);
  expect_error(full, "KV cache full");
  EXPECT_EQ(cache.length, (std::vector<int64_t>{0, 0}));  // a refused batch leaves the cache as it was
  EXPECT_THROW(model->new_cache(1 << 30), Error);           // beyond the model's context
  EXPECT_THROW(model->new_cache(0), Error);
}

}  // namespace
}  // namespace omni
