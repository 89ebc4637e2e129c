// Checkpoints crossing between us and the public auto-round (issue 3, item 7): our auto_round output as read by
// transformers + auto-round, and a checkpoint written by the public auto-round as read by us. Both give the same
// logits as transformers, f32 on both sides: measured 2.4e-6 and 1.9e-6 relative (AMD EPYC AVX2, 2026-12-01), so
// the bound is 2e-5 (8x margin; it was 1e-2, looser than the 1.05e-2 a different computation gives). The
// public asymmetric checkpoint measured 1.7e-6 (Intel Xeon, 2026-12-01) under the same bound.
// Fixtures: tests/data/interop (tools/interop_check_ours.py, tools/interop_autoround_quantize.py; README there).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "backends/cpu/cpu_backend.h"
#include "models/registry.h"
#include "quant/checkpoint_reader.h"
#include "quant/grouped_int_weight.h"
#include "quant/quant_config.h"
#include "support/error_of.h"

namespace omni {
namespace {

const std::string kData = std::string(OMNI_SOURCE_DIR) + "/tests/data/interop/";
constexpr double kBound = 2e-5;

double logits_rel_error(const std::string& name) {
  const std::string dir = kData + name;
  auto model = open_causal_lm(dir + "/model", cpu_backend());
  EXPECT_EQ(model->load_report().quantized_linears, 2 * 7);
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

// The 14 quantized Linears of the fixture model (2 layers x q, k, v, o, gate, up, down).
std::vector<std::string> linear_prefixes() {
  std::vector<std::string> out;
  for (int l = 0; l < 2; ++l)
    for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      out.push_back("model.layers." + std::to_string(l) + "." + m);
  return out;
}

// Issue 11, finding 3: an asymmetric checkpoint written by the public auto-round 0.16.1 (W4 g128 sym=False,
// format "auto_round:gptqmodel": real zero points, the only asymmetric GPTQ-layout packing auto-round 0.16.1
// can run on the CPU) against transformers + auto-round's logits (tools/interop_autoround_asym_3bit.py).
TEST(Interop, PublicAutoRoundAsymmetricCheckpointLoadsWithMatchingLogits) {
  const double e = logits_rel_error("public_autoround_asym");
  std::cout << "public_autoround_asym: rel error vs transformers + auto-round " << e << "\n";
  EXPECT_LE(e, kBound);
}

// The same quantization exported by the public tool as format "auto_gptq" (quant_method gptq, no
// checkpoint_format: GPTQ v1, zero - 1). auto-round 0.16.1 has no CPU backend for it (torch_zp is sym-only), so
// there are no transformers logits; instead its weights must read exactly as the gptqmodel export's.
TEST(Interop, PublicAutoGptqAsymmetricCheckpointReadsAsTheGptqmodelExport) {
  const std::string real_dir = kData + "public_autoround_asym/model", v1_dir = kData + "public_autoround_asym/model_auto_gptq";
  const SafetensorsCheckpoint real = SafetensorsCheckpoint::open_dir(real_dir), v1 = SafetensorsCheckpoint::open_dir(v1_dir);
  const QuantizationConfig real_cfg = *read_quantization_config(real_dir), v1_cfg = *read_quantization_config(v1_dir);
  EXPECT_FALSE(v1_cfg.sym);
  EXPECT_TRUE(v1_cfg.is_gptq());
  const ZeroPointConvention v1_conv = detect_checkpoint_zero_point_convention(v1, v1_cfg);
  std::cout << "auto_gptq asym: detected convention " << zero_point_convention_name(v1_conv) << "\n";
  // Known gap (reported, not changed here): the config has quant_method "gptq" and no checkpoint_format, which
  // transformers / GPTQModel read as "gptq" (v1, zero - 1), but our reader treats the key as absent, finds no
  // value 15 to prove either reading, and refuses the checkpoint for inference. The stored values are zero - 1:
  // forced MinusOne below, every layer equals the gptqmodel export.
  EXPECT_EQ(v1_conv, ZeroPointConvention::Unknown);
  const std::string load_error = testing_support::error_of([&] { open_causal_lm(v1_dir, cpu_backend()); });
  std::cout << "auto_gptq asym, open_causal_lm: " << load_error << "\n";
  EXPECT_NE(load_error.find("ambiguous zero-point convention"), std::string::npos) << load_error;
  for (const std::string& p : linear_prefixes()) {
    const GroupedIntWeight a = read_quantized_linear(real, p, real_cfg);
    const GroupedIntWeight b = read_quantized_linear(v1, p, v1_cfg, {-1, -1, ZeroPointConvention::MinusOne});
    ASSERT_EQ(a.zeros.numel(), b.zeros.numel()) << p;
    EXPECT_EQ(0, std::memcmp(a.zeros.data<uint8_t>(), b.zeros.data<uint8_t>(), a.zeros.nbytes())) << p;
    EXPECT_EQ(0, std::memcmp(a.qweight.data<int32_t>(), b.qweight.data<int32_t>(), a.qweight.nbytes())) << p;
    EXPECT_EQ(0, std::memcmp(a.scales.raw(), b.scales.raw(), a.scales.nbytes())) << p;
  }
}

// A 3-bit checkpoint of the public auto-round (W3 g128 sym, format "auto_round" -> packing_format
// "auto_round:auto_gptq"). Every quantized Linear is read; layer 0's dequantized weights equal, bit for bit, what
// the public tool's own QuantLinear (qlinear_torch_zp, f32) computes; and the model's logits match transformers +
// auto-round's (f32) under the same bound as the 4-bit checkpoints. The CPU int kernels take 4-bit codes, so the
// CPU backend holds these weights dense (the load report says so).
TEST(Interop, PublicAutoRound3BitCheckpointReadsAsThePublicToolDequantizes) {
  const std::string dir = kData + "public_autoround_3bit/model";
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(dir);
  const QuantizationConfig cfg = *read_quantization_config(dir);
  EXPECT_EQ(cfg.bits, 3);
  auto ref = SafetensorsFile::open(kData + "public_autoround_3bit/dequantized.safetensors");
  int compared = 0;
  for (const std::string& p : linear_prefixes()) {
    const GroupedIntWeight w = read_quantized_linear(ck, p, cfg);
    EXPECT_EQ(w.bits, 3);
    if (p.rfind("model.layers.0.", 0) != 0) continue;
    const Tensor d = dequantize_grouped_int_weight(w);
    const Tensor r = ref->tensor(p + ".weight");
    ASSERT_EQ(d.shape(), r.shape()) << p;
    int64_t differ = 0;
    for (int64_t i = 0; i < r.numel(); ++i) differ += d.data<float>()[i] != r.data<float>()[i];
    EXPECT_EQ(differ, 0) << p << ": " << differ << " of " << r.numel() << " dequantized weights differ";
    ++compared;
  }
  EXPECT_EQ(compared, 7);
}

TEST(Interop, PublicAutoRound3BitCheckpointGivesTheLogitsOfTransformers) {
  auto model = open_causal_lm(kData + "public_autoround_3bit/model", cpu_backend());
  const auto& layouts = model->load_report().linear_layouts;
  const std::string dequantized = "dense F32 (dequantized: 3-bit codes; the CPU int kernels take 4-bit)";
  ASSERT_EQ(layouts.count(dequantized), 1u) << "the 3-bit Linears are not reported as dequantized";
  EXPECT_EQ(layouts.at(dequantized), 2 * 7);
  const double e = logits_rel_error("public_autoround_3bit");
  std::cout << "public_autoround_3bit: rel error vs transformers + auto-round " << e << "\n";
  EXPECT_LE(e, kBound);
}

}  // namespace
}  // namespace omni
