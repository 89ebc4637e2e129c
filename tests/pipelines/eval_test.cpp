// Perplexity / KLD / top-1 agreement of the evaluation against values computed here, independently, from the
// golden logits that transformers produced for the Qwen3 fixtures (tests/data/qwen3, see its README): the
// untied model and its W4A16 copy were run on the same input_ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/tokenizers/tokenizer.h"
#include "backends/cpu/cpu_backend.h"
#include "models/registry.h"
#include "pipelines/eval.h"

namespace omni {
namespace {

const std::string kData = std::string(OMNI_SOURCE_DIR) + "/tests/data/qwen3";

struct Golden {
  std::vector<int32_t> ids;
  std::vector<float> logits;  // [T, V]
  int64_t V = 0;
};

Golden load_golden(const std::string& model) {
  auto f = SafetensorsFile::open(kData + "/" + model + "/golden.safetensors");
  Golden g;
  const Tensor ids = f->tensor("input_ids");
  g.ids.assign(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel());
  const Tensor logits = f->tensor("logits");
  g.V = logits.dim(1);
  g.logits.assign(logits.data<float>(), logits.data<float>() + logits.numel());
  return g;
}

// log softmax of row t in long double, the textbook way.
std::vector<long double> log_softmax_row(const Golden& g, int64_t t) {
  const float* row = g.logits.data() + t * g.V;
  const long double max = *std::max_element(row, row + g.V);
  long double sum = 0;
  for (int64_t i = 0; i < g.V; ++i) sum += std::exp(static_cast<long double>(row[i]) - max);
  std::vector<long double> out(static_cast<size_t>(g.V));
  for (int64_t i = 0; i < g.V; ++i) out[static_cast<size_t>(i)] = row[i] - max - std::log(sum);
  return out;
}

// Per-position NLL of the next token over the first `len` tokens of the golden sequence.
std::vector<double> golden_nll(const Golden& g, int64_t len) {
  std::vector<double> nll;
  for (int64_t t = 0; t + 1 < len; ++t)
    nll.push_back(static_cast<double>(-log_softmax_row(g, t)[static_cast<size_t>(g.ids[t + 1])]));
  return nll;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

TEST(Eval, PerplexityMatchesTransformersGoldenLogits) {
  const Golden g = load_golden("untied");
  const int64_t T = static_cast<int64_t>(g.ids.size());
  ASSERT_EQ(T, 37);
  const std::vector<double> nll = golden_nll(g, T);
  const double expected_mean = mean(nll);
  double var = 0;
  for (double x : nll) var += (x - expected_mean) * (x - expected_mean);
  const double expected_se = std::sqrt(var / static_cast<double>(nll.size()) / static_cast<double>(nll.size() - 1));

  auto model = open_causal_lm(kData + "/untied", cpu_backend());
  EvalOptions opt;
  opt.ctx = T;
  const EvalResult r = evaluate_tokens(*model, nullptr, g.ids, opt);
  EXPECT_EQ(r.windows, 1);
  EXPECT_EQ(r.tokens, T - 1);
  EXPECT_FALSE(r.has_reference);
  EXPECT_NEAR(r.mean_nll, expected_mean, 1e-4 * expected_mean);
  EXPECT_NEAR(r.ppl, std::exp(expected_mean), 2e-3 * std::exp(expected_mean));
  EXPECT_NEAR(r.mean_nll_stderr, expected_se, 1e-3 * expected_se);
  EXPECT_NEAR(r.ppl_stderr, r.ppl * expected_se, 2e-3 * r.ppl * expected_se);

  // Causal attention: the first window of 12 tokens sees exactly what the full sequence's first 12 positions saw.
  opt.ctx = 12;
  opt.max_windows = 1;
  const EvalResult first = evaluate_tokens(*model, nullptr, g.ids, opt);
  EXPECT_EQ(first.tokens, 11);
  EXPECT_NEAR(first.mean_nll, mean(golden_nll(g, 12)), 1e-4 * first.mean_nll);
  // max_tokens cuts the stream before windowing: 20 tokens hold one 12-token window.
  opt.max_windows = 0;
  opt.max_tokens = 20;
  EXPECT_EQ(evaluate_tokens(*model, nullptr, g.ids, opt).windows, 1);
  opt.max_tokens = 0;
  const EvalResult three = evaluate_tokens(*model, nullptr, g.ids, opt);  // 37 tokens: 3 windows, 1 left over
  EXPECT_EQ(three.windows, 3);
  EXPECT_EQ(three.tokens, 33);
}

TEST(Eval, ModelAgainstItselfHasZeroKldAndFullAgreement) {
  const Golden g = load_golden("untied");
  auto model = open_causal_lm(kData + "/untied", cpu_backend());
  auto same = open_causal_lm(kData + "/untied", cpu_backend());
  EvalOptions opt;
  opt.ctx = 18;  // two windows
  const EvalResult r = evaluate_tokens(*model, same.get(), g.ids, opt);
  ASSERT_TRUE(r.has_reference);
  EXPECT_EQ(r.windows, 2);
  EXPECT_EQ(r.mean_kld, 0.0);
  EXPECT_EQ(r.kld_max, 0.0);
  EXPECT_EQ(r.same_top, 1.0);
  EXPECT_EQ(r.delta_ppl, 0.0);
  EXPECT_EQ(r.ppl, r.ref_ppl);
}

TEST(Eval, KldOfW4A16AgainstBf16MatchesGoldenLogits) {
  const Golden ref = load_golden("untied");
  const Golden q = load_golden("untied-w4a16");
  ASSERT_EQ(ref.ids, q.ids);  // both goldens ran the same prompt
  const int64_t T = static_cast<int64_t>(ref.ids.size());
  std::vector<double> kld;
  int64_t same_top = 0;
  for (int64_t t = 0; t + 1 < T; ++t) {
    const auto lp = log_softmax_row(ref, t), lq = log_softmax_row(q, t);
    long double kl = 0;
    for (size_t i = 0; i < lp.size(); ++i) kl += std::exp(lp[i]) * (lp[i] - lq[i]);
    kld.push_back(static_cast<double>(kl));
    same_top += std::max_element(lp.begin(), lp.end()) - lp.begin() == std::max_element(lq.begin(), lq.end()) - lq.begin();
  }
  const double expected_kld = mean(kld);
  const double expected_max = *std::max_element(kld.begin(), kld.end());
  const double expected_ppl = std::exp(mean(golden_nll(q, T))), expected_ref_ppl = std::exp(mean(golden_nll(ref, T)));
  ASSERT_GT(expected_kld, 0.01);  // the quantized model really differs

  auto model = open_causal_lm(kData + "/untied-w4a16", cpu_backend());
  auto bf16 = open_causal_lm(kData + "/untied", cpu_backend());
  ASSERT_FALSE(model->load_report().quant_format.empty());
  EvalOptions opt;
  opt.ctx = T;
  const EvalResult r = evaluate_tokens(*model, bf16.get(), ref.ids, opt);
  ASSERT_TRUE(r.has_reference);
  EXPECT_EQ(r.tokens, T - 1);
  EXPECT_NEAR(r.mean_kld, expected_kld, 1e-3 * expected_kld);
  EXPECT_NEAR(r.kld_max, expected_max, 1e-3 * expected_max);
  EXPECT_EQ(r.same_top, static_cast<double>(same_top) / static_cast<double>(T - 1));  // top-2 gaps ≥ 0.11 here
  EXPECT_LT(r.same_top, 1.0);
  EXPECT_NEAR(r.ppl, expected_ppl, 2e-3 * expected_ppl);
  EXPECT_NEAR(r.ref_ppl, expected_ref_ppl, 2e-3 * expected_ref_ppl);
  EXPECT_NEAR(r.delta_ppl, expected_ppl - expected_ref_ppl, 2e-3 * (expected_ppl + expected_ref_ppl));
  double var = 0;
  for (double x : kld) var += (x - expected_kld) * (x - expected_kld);
  const double se = std::sqrt(var / static_cast<double>(kld.size()) / static_cast<double>(kld.size() - 1));
  EXPECT_NEAR(r.mean_kld_stderr, se, 2e-3 * se);
  EXPECT_LE(r.kld_median, r.kld_p99);
  EXPECT_LE(r.kld_p99, r.kld_p999);
  EXPECT_LE(r.kld_p999, r.kld_max);
}

TEST(Eval, AccumulatorOnGoldenLogitsSplitIntoWindows) {
  // Fed the goldens' logits directly, in two pieces, the accumulator gives the per-piece statistics exactly as
  // computed here (no model involved).
  const Golden ref = load_golden("untied");
  const Golden q = load_golden("untied-w4a16");
  const int64_t V = ref.V, split = 20, T = static_cast<int64_t>(ref.ids.size());
  auto rows = [&](const Golden& g, int64_t begin, int64_t end) {
    return Tensor::from_f32(std::span<const float>(g.logits.data() + begin * V, static_cast<size_t>((end - begin) * V)),
                            {end - begin, V});
  };
  QualityAccumulator acc;
  const std::span<const int32_t> ids(ref.ids);
  const Tensor q1 = rows(q, 0, split), r1 = rows(ref, 0, split), q2 = rows(q, split, T), r2 = rows(ref, split, T);
  acc.add_window(q1, &r1, ids.subspan(0, split));
  acc.add_window(q2, &r2, ids.subspan(split));
  const EvalResult r = acc.result();
  EXPECT_EQ(r.windows, 2);
  EXPECT_EQ(r.tokens, T - 2);  // the second piece's first token is not predicted

  std::vector<double> nll = golden_nll(q, split);  // positions 0..split-2
  for (int64_t t = split; t + 1 < T; ++t) nll.push_back(static_cast<double>(-log_softmax_row(q, t)[static_cast<size_t>(q.ids[t + 1])]));
  EXPECT_NEAR(r.mean_nll, mean(nll), 1e-9 * mean(nll));

  // Errors: a reference with another vocabulary, a mismatched row count, mixing with and without a reference.
  QualityAccumulator bad;
  const Tensor narrow = Tensor::from_f32(std::span<const float>(ref.logits.data(), static_cast<size_t>(split * (V - 1))),
                                         {split, V - 1});
  EXPECT_THROW(bad.add_window(q1, &narrow, ids.subspan(0, split)), Error);
  EXPECT_THROW(bad.add_window(q1, nullptr, ids.subspan(0, split - 1)), Error);
  bad.add_window(q1, nullptr, ids.subspan(0, split));
  EXPECT_THROW(bad.add_window(q2, &r2, ids.subspan(split)), Error);
}

TEST(Eval, TooShortStreamAndBadOptionsFail) {
  const Golden g = load_golden("untied");
  auto model = open_causal_lm(kData + "/untied", cpu_backend());
  EvalOptions opt;
  opt.ctx = 100;
  try {
    evaluate_tokens(*model, nullptr, g.ids, opt);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("37 tokens"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("window of 100"), std::string::npos) << e.what();
  }
  opt.ctx = 1;
  EXPECT_THROW(evaluate_tokens(*model, nullptr, g.ids, opt), Error);
  auto tied = open_causal_lm(kData + "/tied", cpu_backend());  // vocab 512 vs 640
  opt.ctx = 8;
  EXPECT_THROW(evaluate_tokens(*model, tied.get(), g.ids, opt), Error);
}

TEST(Eval, StreamPutsTheSeparatorBetweenSamples) {
  const Tokenizer tok = Tokenizer::from_dir(std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3");
  const std::vector<std::string> samples{"And God said", "a small animal", "Love is"};
  const std::vector<int32_t> stream = tokenize_eval_stream(tok, samples);
  std::vector<int32_t> expected;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (i) expected.push_back(*tok.token_to_id("<|endoftext|>"));
    const auto ids = tok.encode(samples[i]);
    expected.insert(expected.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(stream, expected);
  EXPECT_EQ(std::count(stream.begin(), stream.end(), 8189), 2);
}

}  // namespace
}  // namespace omni
