// Cross-checks against the W4A16 fixtures of tests/data/qwen3 (packed by the independent numpy packer of
// tools/make_qwen3_fixtures.py): our reader must decode them, and our RTN of the BF16 fixture weights must give
// the same packed words and scales.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "core/half.h"
#include "io/safetensors.h"
#include "quant/checkpoint_reader.h"
#include "quant/grouped_int_weight.h"
#include "quant/layer_selection.h"
#include "quant/rtn.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

void check_fixture(const std::string& bf16_name, const std::string& quant_name) {
  const std::string base = std::string(OMNI_SOURCE_DIR) + "/tests/data/qwen3/";
  // The fixtures are committed (tools/make_qwen3_fixtures.py); their absence is a failure, not a skip.
  ASSERT_TRUE(fs::exists(base + quant_name + "/config.json")) << "fixture " << quant_name << " missing";
  ASSERT_TRUE(fs::exists(base + bf16_name + "/config.json")) << "fixture " << bf16_name << " missing";
  const SafetensorsCheckpoint dense = SafetensorsCheckpoint::open_dir(base + bf16_name);
  const SafetensorsCheckpoint packed = SafetensorsCheckpoint::open_dir(base + quant_name);
  const QuantizationConfig cfg = *read_quantization_config(base + quant_name);
  int layers = 0;
  for (const std::string& name : packed.names()) {
    if (name.size() < 8 || name.compare(name.size() - 8, 8, ".qweight") != 0) continue;
    const std::string p = name.substr(0, name.size() - 8);
    SCOPED_TRACE(quant_name + ": " + p);
    ASSERT_TRUE(is_layer_quantized(cfg, p));
    const LayerQuantization lq = resolve_layer_quantization(cfg, p);
    const Tensor w = dense.tensor(p + ".weight");
    const GroupedIntWeight got = read_quantized_linear(packed, p, cfg, {w.dim(1), w.dim(0)});
    const GroupedIntWeight ours = quantize_rtn(w, lq.scheme);
    EXPECT_EQ(std::memcmp(got.qweight.raw(), ours.qweight.raw(), ours.qweight.nbytes()), 0);
    EXPECT_EQ(std::memcmp(got.scales.raw(), ours.scales.raw(), ours.scales.nbytes()), 0);
    EXPECT_EQ(std::memcmp(got.zeros.raw(), ours.zeros.raw(), ours.zeros.nbytes()), 0);
    const Tensor a = dequantize_grouped_int_weight(got), b = fake_quantize_rtn(w, lq.scheme);
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0);
    ++layers;
  }
  EXPECT_GT(layers, 0);
  // Layers left 16-bit by extra_config keep their dense weight.
  for (const ExtraConfigEntry& e : cfg.extra_config) {
    EXPECT_FALSE(is_layer_quantized(cfg, e.key));
    EXPECT_TRUE(packed.contains(e.key + ".weight")) << e.key;
  }
}

TEST(FixtureInterop, TiedAutoRound) { check_fixture("tied", "tied-w4a16"); }
TEST(FixtureInterop, UntiedAutoRound) { check_fixture("untied", "untied-w4a16"); }
TEST(FixtureInterop, UntiedGptqRealZero) { check_fixture("untied", "untied-w4a16-gptq"); }

}  // namespace
}  // namespace omni
