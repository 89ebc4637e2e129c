// Today's `omniround quantize --rtn` against the committed interop fixtures of tests/data/interop (issue 11,
// finding 3), byte for byte, through the binary.
//
// * ours_rtn/model: `quantize --rtn` of tests/data/qwen3/untied (W4, group 128, full-range sym, auto_round,
//   packing auto_round:auto_gptq) from an earlier build. When it was committed, the PUBLIC auto-round 0.16.1's
//   own RTN of the same model (AutoRound(..., iters=0, disable_opt_rtn=True), format auto_round) was found
//   identical in all 53 tensors (tools/interop_autoround_quantize.py fixture --ours-rtn; re-checked for issue 11
//   with the public package, same result), and transformers + auto-round load it. The public tool's RTN output
//   itself is not committed, so this file stands for it: every tensor must still be byte-identical.
// * public_autoround_untied/model: the public auto-round with iters = 10 on the same model. Its tuned rounding
//   legitimately differs from RTN (~55% of codes, ~98% of scales), so only what does not depend on tuning must
//   agree: the same tensor names, dtypes and shapes, every tensor that is not quantized (embeddings, norms,
//   lm_head) byte for byte, the symmetric qzeros words (0x77777777, stored zero − 1), and the quantization
//   keys bits / group_size / sym / packing_format / block_name_to_quantize.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <string>

#include "io/safetensors.h"
#include "quant/quant_config.h"
#include "support/run_omniround.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(OMNI_SOURCE_DIR) + "/tests/data";
const std::string kSource = kData + "/qwen3/untied";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_quantized_part(const std::string& name) {
  return ends_with(name, ".qweight") || ends_with(name, ".qzeros") || ends_with(name, ".scales");
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Runs `quantize --rtn` once for the whole file (the binary is the one the build produced).
const std::string& rtn_output() {
  static const std::string out = [] {
    const std::string dir = std::string(OMNI_BINARY_DIR) + "/cli_test_tmp/rtn_interop_fixture";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string o = dir + "/model";
    const auto r = testing_support::run_omniround("quantize " + kSource + " -o " + o + " --rtn");
    if (r.status != 0) ADD_FAILURE() << "quantize --rtn failed (" << r.status << "):\n" << r.output;
    return o;
  }();
  return out;
}

TEST(RtnInteropFixture, TodaysRtnEqualsTheCommittedRtnCheckpoint) {
  const std::string fixture = kData + "/interop/ours_rtn/model";
  ASSERT_TRUE(fs::exists(fixture + "/model.safetensors")) << "fixture " << fixture << " missing";
  const SafetensorsCheckpoint want = SafetensorsCheckpoint::open_dir(fixture);
  const SafetensorsCheckpoint got = SafetensorsCheckpoint::open_dir(rtn_output());
  ASSERT_EQ(got.names(), want.names());
  int quantized = 0;
  for (const std::string& n : want.names()) {
    const Tensor a = got.tensor(n), b = want.tensor(n);
    EXPECT_EQ(dtype_name(a.dtype()), dtype_name(b.dtype())) << n;
    EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape())) << n;
    EXPECT_TRUE(same_bytes(a, b)) << n << " differs from " << fixture;
    quantized += ends_with(n, ".qweight");
  }
  EXPECT_EQ(want.names().size(), 53u);
  EXPECT_EQ(quantized, 14);  // 2 layers x 7 Linears
  const QuantizationConfig a = *read_quantization_config(rtn_output()), b = *read_quantization_config(fixture);
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_EQ(a.group_size, b.group_size);
  EXPECT_EQ(a.sym, b.sym);
  EXPECT_EQ(a.quant_method, b.quant_method);
  EXPECT_EQ(a.packing_format, b.packing_format);
  EXPECT_EQ(a.block_name_to_quantize, b.block_name_to_quantize);
  EXPECT_EQ(a.extra_config.size(), b.extra_config.size());
}

TEST(RtnInteropFixture, AgreesWithThePublicAutoRoundCheckpointWhereTuningCannotMatter) {
  const std::string fixture = kData + "/interop/public_autoround_untied/model";
  ASSERT_TRUE(fs::exists(fixture + "/model.safetensors")) << "fixture " << fixture << " missing";
  const SafetensorsCheckpoint pub = SafetensorsCheckpoint::open_dir(fixture);
  const SafetensorsCheckpoint got = SafetensorsCheckpoint::open_dir(rtn_output());
  ASSERT_EQ(got.names(), pub.names());
  int unquantized = 0, qzeros = 0, tuned_differ = 0;
  for (const std::string& n : pub.names()) {
    const Tensor a = got.tensor(n), b = pub.tensor(n);
    ASSERT_EQ(dtype_name(a.dtype()), dtype_name(b.dtype())) << n;
    ASSERT_EQ(shape_str(a.shape()), shape_str(b.shape())) << n;
    if (!is_quantized_part(n)) {
      EXPECT_TRUE(same_bytes(a, b)) << n << " (not quantized) differs from the public checkpoint";
      ++unquantized;
    } else if (ends_with(n, ".qzeros")) {
      EXPECT_TRUE(same_bytes(a, b)) << n;
      for (int64_t i = 0; i < b.numel(); ++i) ASSERT_EQ(b.data<int32_t>()[i], 0x77777777) << n;
      ++qzeros;
    } else {
      tuned_differ += !same_bytes(a, b);
    }
  }
  EXPECT_EQ(unquantized, 11);  // embed_tokens, lm_head, model.norm, 4 norms per layer
  EXPECT_EQ(qzeros, 14);
  // The public file really is tuned: if its qweight/scales equalled RTN, it would not test our reader.
  EXPECT_EQ(tuned_differ, 28);
  const QuantizationConfig a = *read_quantization_config(rtn_output()), b = *read_quantization_config(fixture);
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_EQ(a.group_size, b.group_size);
  EXPECT_EQ(a.sym, b.sym);
  EXPECT_EQ(a.quant_method, b.quant_method);
  EXPECT_EQ(a.packing_format, b.packing_format);
  EXPECT_EQ(a.block_name_to_quantize, b.block_name_to_quantize);
}

}  // namespace
}  // namespace omni
