#include "quant/checkpoint_reader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "quant/grouped_int_weight.h"
#include "quant/pack.h"
#include "quant/rtn.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

Tensor random_weight(int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  Tensor w = Tensor::empty({N, K}, DType::F32);
  for (int64_t i = 0; i < N * K; ++i) w.data<float>()[i] = round_to_bf16(nd(rng) + 0.01f * float(i % 7 - 3));
  return w;
}

// The tensors a writer with zero-point offset `minus` (1: zero − 1, 0: real zero) produces for `w`.
std::vector<NamedTensor> layer_tensors(const std::string& p, const GroupedIntWeight& w, int minus,
                                       const Tensor& g_idx = {}) {
  const int64_t G = w.num_groups(), N = w.out_features;
  std::vector<uint8_t> stored(static_cast<size_t>(G * N));
  for (size_t i = 0; i < stored.size(); ++i) stored[i] = static_cast<uint8_t>(w.zeros.data<uint8_t>()[i] - minus);
  std::vector<NamedTensor> t = {{p + ".qweight", w.qweight},
                                {p + ".qzeros", pack_auto_gptq_qzeros(stored.data(), G, N, w.bits)},
                                {p + ".scales", w.scales}};
  if (g_idx.defined()) t.push_back({p + ".g_idx", g_idx});
  return t;
}

class ReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(OMNI_BINARY_DIR) + "/quant_test_tmp/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  SafetensorsCheckpoint write(const std::vector<NamedTensor>& tensors) {
    write_safetensors(dir_ + "/model.safetensors", tensors);
    return SafetensorsCheckpoint::open_dir(dir_);
  }
  static QuantizationConfig config(bool sym, const char* packing_format) {
    QuantizationConfig c;
    c.bits = 4;
    c.group_size = 32;
    c.sym = sym;
    c.block_name_to_quantize = {"model.layers"};
    if (packing_format) {
      c.packing_format = packing_format;
      c.packing_format_given = true;
    }
    return c;
  }
  static std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  static void expect_same_dequant(const GroupedIntWeight& a, const GroupedIntWeight& b) {
    const Tensor x = dequantize_grouped_int_weight(a), y = dequantize_grouped_int_weight(b);
    ASSERT_EQ(x.shape(), y.shape());
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(x.data<float>()[i], y.data<float>()[i]) << i;
  }
  std::string dir_;
  const std::string p_ = "model.layers.0.self_attn.q_proj";
};

TEST_F(ReaderTest, SymmetricZeroMinusOne) {
  const GroupedIntWeight w = quantize_rtn(random_weight(16, 64, 1), QuantScheme{4, 32, true});
  const SafetensorsCheckpoint ck = write(layer_tensors(p_, w, 1));
  const GroupedIntWeight r = read_quantized_linear(ck, p_, config(true, "auto_round:auto_gptq"), {64, 16});
  EXPECT_EQ(r.zeros.data<uint8_t>()[0], 8);
  EXPECT_FALSE(r.g_idx.defined());
  expect_same_dequant(r, w);
  // Negative scales are kept as they are.
  bool negative = false;
  for (int64_t i = 0; i < r.scales.numel(); ++i) {
    EXPECT_EQ(r.scales.data<uint16_t>()[i], w.scales.data<uint16_t>()[i]);
    negative = negative || f16_to_f32(r.scales.data<uint16_t>()[i]) < 0;
  }
  EXPECT_TRUE(negative);
}

TEST_F(ReaderTest, SymmetricRealZeroWinsOverTheFlag) {
  const GroupedIntWeight w = quantize_rtn(random_weight(16, 64, 2), QuantScheme{4, 32, true});
  const SafetensorsCheckpoint ck = write(layer_tensors(p_, w, 0));  // stores 8s
  const GroupedIntWeight r = read_quantized_linear(ck, p_, config(true, "auto_round:auto_gptq"));
  EXPECT_EQ(r.zeros.data<uint8_t>()[0], 8);
  expect_same_dequant(r, w);
}

TEST_F(ReaderTest, SymmetricWithVaryingZerosIsAnError) {
  const GroupedIntWeight w = quantize_rtn(random_weight(16, 64, 3), QuantScheme{4, 32, false});
  const SafetensorsCheckpoint ck = write(layer_tensors(p_, w, 1));
  const std::string e = error_of([&] { read_quantized_linear(ck, p_, config(true, nullptr)); });
  EXPECT_NE(e.find(p_ + ".qzeros"), std::string::npos) << e;
  EXPECT_NE(e.find("symmetric"), std::string::npos) << e;
}

TEST_F(ReaderTest, AsymmetricNeedsEvidenceOrDeclaration) {
  const GroupedIntWeight w = quantize_rtn(random_weight(32, 128, 4), QuantScheme{4, 32, false});
  for (int64_t i = 0; i < w.zeros.numel(); ++i) {
    ASSERT_GE(w.zeros.data<uint8_t>()[i], 1);   // storable as zero − 1
    ASSERT_LE(w.zeros.data<uint8_t>()[i], 14);  // no 15: the values alone prove nothing
  }
  const SafetensorsCheckpoint ck = write(layer_tensors(p_, w, 1));
  // Declared by packing_format: zero − 1.
  expect_same_dequant(read_quantized_linear(ck, p_, config(false, "auto_round:auto_gptq")), w);
  // Not declared: ambiguous.
  const std::string e = error_of([&] { read_quantized_linear(ck, p_, config(false, nullptr)); });
  EXPECT_NE(e.find("ambiguous zero-point convention"), std::string::npos) << e;
  EXPECT_NE(e.find(p_ + ".qzeros"), std::string::npos) << e;
  // The caller can settle it.
  QuantizedLinearReadOptions o;
  o.zero_point_convention = ZeroPointConvention::MinusOne;
  expect_same_dequant(read_quantized_linear(ck, p_, config(false, nullptr), o), w);
  // Read as native auto_round (real zero) the result is off by one step: the convention matters.
  const GroupedIntWeight wrong = read_quantized_linear(ck, p_, config(false, "auto_round"));
  EXPECT_NE(wrong.zeros.data<uint8_t>()[0], w.zeros.data<uint8_t>()[0]);
}

TEST_F(ReaderTest, AStoredFifteenProvesRealZero) {
  GroupedIntWeight w = quantize_rtn(random_weight(16, 64, 5), QuantScheme{4, 32, false});
  w.zeros = w.zeros.clone();
  w.zeros.data<uint8_t>()[3] = 15;  // a real zero point of 15
  const std::string q = "model.layers.1.mlp.up_proj";
  const SafetensorsCheckpoint ck = write(layer_tensors(q, w, 0));
  const GroupedIntWeight r = read_quantized_linear(ck, q, config(false, nullptr));
  expect_same_dequant(r, w);
  EXPECT_EQ(detect_checkpoint_zero_point_convention(ck, config(false, nullptr)), ZeroPointConvention::Real);
  const std::string e = error_of([&] { read_quantized_linear(ck, q, config(false, "auto_round:auto_gptq")); });
  EXPECT_NE(e.find("impossible"), std::string::npos) << e;
}

TEST_F(ReaderTest, GptqGIdxTrivialAndActOrder) {
  const GroupedIntWeight w = quantize_rtn(random_weight(16, 64, 6), QuantScheme{4, 32, true});
  QuantizationConfig c = config(true, nullptr);
  c.quant_method = "gptq";
  {
    std::vector<int32_t> trivial(64);
    for (int k = 0; k < 64; ++k) trivial[static_cast<size_t>(k)] = k / 32;
    const SafetensorsCheckpoint ck = write(layer_tensors(p_, w, 1, Tensor::from_i32(trivial, {64})));
    const GroupedIntWeight r = read_quantized_linear(ck, p_, c);
    EXPECT_FALSE(r.g_idx.defined());
    expect_same_dequant(r, w);
  }
  {
    std::vector<int32_t> perm(64);
    for (int k = 0; k < 64; ++k) perm[static_cast<size_t>(k)] = k % 2;  // act-order: interleaved groups
    const SafetensorsCheckpoint ck = write(layer_tensors(p_, w, 1, Tensor::from_i32(perm, {64})));
    const GroupedIntWeight r = read_quantized_linear(ck, p_, c);
    ASSERT_TRUE(r.g_idx.defined());
    const Tensor d = dequantize_grouped_int_weight(r);
    const std::vector<uint8_t> codes = unpack_auto_gptq_int4(w.qweight, 16, 64);
    for (int64_t n = 0; n < 16; ++n)
      for (int64_t k = 0; k < 64; ++k) {
        const float s = f16_to_f32(w.scales.data<uint16_t>()[(k % 2) * 16 + n]);
        ASSERT_EQ(d.data<float>()[n * 64 + k], s * float(int(codes[static_cast<size_t>(n * 64 + k)]) - 8));
      }
  }
  {
    std::vector<int32_t> bad(64, 0);
    bad[10] = 2;
    const SafetensorsCheckpoint ck = write(layer_tensors(p_, w, 1, Tensor::from_i32(bad, {64})));
    const std::string e = error_of([&] { read_quantized_linear(ck, p_, c); });
    EXPECT_NE(e.find(p_ + ".g_idx"), std::string::npos) << e;
  }
}

TEST_F(ReaderTest, ValidatesShapesAndDtypes) {
  const GroupedIntWeight w = quantize_rtn(random_weight(16, 64, 7), QuantScheme{4, 32, true});
  const QuantizationConfig c = config(true, "auto_round:auto_gptq");
  {
    std::vector<NamedTensor> t = layer_tensors(p_, w, 1);
    t[2].tensor = w.scales.to(DType::F32);
    const SafetensorsCheckpoint ck = write(t);
    const std::string e = error_of([&] { read_quantized_linear(ck, p_, c); });
    EXPECT_NE(e.find(p_ + ".scales"), std::string::npos) << e;
    EXPECT_NE(e.find("F32"), std::string::npos) << e;
  }
  {
    const SafetensorsCheckpoint ck = write(layer_tensors(p_, w, 1));
    std::string e = error_of([&] { read_quantized_linear(ck, p_, c, {128, 16}); });  // model says K = 128
    EXPECT_NE(e.find(p_ + ".qweight"), std::string::npos) << e;
    QuantizationConfig g64 = c;
    g64.group_size = 64;  // scales have 2 groups, the config says 1
    e = error_of([&] { read_quantized_linear(ck, p_, g64); });
    EXPECT_NE(e.find(p_ + ".scales"), std::string::npos) << e;
    e = error_of([&] { read_quantized_linear(ck, "model.layers.0.self_attn.k_proj", c); });
    EXPECT_NE(e.find("model.layers.0.self_attn.k_proj.qweight"), std::string::npos) << e;
    QuantizationConfig awq = c;
    awq.packing_format = "auto_round:auto_awq";
    e = error_of([&] { read_quantized_linear(ck, p_, awq); });
    EXPECT_NE(e.find("packing_format"), std::string::npos) << e;
    QuantizationConfig skip = c;
    skip.extra_config.push_back({p_, LayerOverride{16, {}, {}, "fp", {}}, false});
    e = error_of([&] { read_quantized_linear(ck, p_, skip); });
    EXPECT_NE(e.find("16-bit"), std::string::npos) << e;
  }
  {
    std::vector<NamedTensor> t = layer_tensors(p_, w, 1);
    t.erase(t.begin() + 1);  // no qzeros
    const SafetensorsCheckpoint ck = write(t);
    const std::string e = error_of([&] { read_quantized_linear(ck, p_, c); });
    EXPECT_NE(e.find(p_ + ".qzeros"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace omni
