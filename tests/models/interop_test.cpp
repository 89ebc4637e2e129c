// Checkpoints crossing between us and the public auto-round (issue 3, item 7): our auto_round output as read by
// transformers + auto-round, and a checkpoint written by the public auto-round as read by us. Both give the same
// logits as transformers, f32 on both sides: measured 2.4e-6 and 1.9e-6 relative (AMD EPYC AVX2, 2026-12-01), so
// the bound is 2e-5 (8x margin; it was 1e-2, looser than the 1.05e-2 a different computation gives).
// Fixtures: tests/data/interop (tools/interop_check_ours.py, tools/interop_autoround_quantize.py; README there).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "backends/cpu/cpu_backend.h"
#include "models/registry.h"

namespace omni {
namespace {

const std::string kData = std::string(OMNI_SOURCE_DIR) + "/tests/data/interop/";
constexpr double kBound = 2e-5;

double logits_rel_error(const std::string& name) {
  const std::string dir = kData + name;
  auto model = open_causal_lm(dir + "/model", cpu_backend());
  auto golden = SafetensorsFile::open(dir + "/transformers_logits.safetensors");
  const Tensor ids_t = golden->tensor("input_ids");
  const std::vector<int32_t> ids(ids_t.data<int32_t>(), ids_t.data<int32_t>() + ids_t.numel());
  KvCache cache = model->new_cache(static_cast<int64_t>(ids.size()));
  const Tensor out = model->forward(ids, cache, /*all_logits=*/true);
  const Tensor ref = golden->tensor("logits");
  EXPECT_EQ(out.shape(), ref.shape());
  double num = 0, den = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = static_cast<double>(out.data<float>()[i]) - ref.data<float>()[i];
    num += d * d;
    den += static_cast<double>(ref.data<float>()[i]) * ref.data<float>()[i];
  }
  return std::sqrt(num / den);
}

TEST(Interop, OurAutoRoundCheckpointMatchesTransformersWithAutoRound) {
  const double e = logits_rel_error("ours_rtn");
  std::cout << "ours_rtn: rel error vs transformers + auto-round " << e << "\n";
  EXPECT_LE(e, kBound);
}

TEST(Interop, PublicAutoRoundCheckpointLoadsWithMatchingLogits) {
  auto model = open_causal_lm(kData + "public_autoround_untied/model", cpu_backend());
  EXPECT_EQ(model->load_report().quantized_linears, 2 * 7);
  const double e = logits_rel_error("public_autoround_untied");
  std::cout << "public_autoround_untied: rel error vs transformers + auto-round " << e << "\n";
  EXPECT_LE(e, kBound);
}

}  // namespace
}  // namespace omni
