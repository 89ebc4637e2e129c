#include "quant/export.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "io/file_util.h"
#include "quant/checkpoint_reader.h"
#include "quant/grouped_int_weight.h"
#include "quant/layer_selection.h"
#include "quant/rtn.h"
#include "quant/rtn_checkpoint.h"

namespace omni {
namespace {

// quant/ knows no architecture: the caller names the blocks and Linears (here the Llama-family decoder's).
RtnOptions decoder_rtn_options() {
  RtnOptions o;
  o.block_names = {"model.layers"};
  o.linear_names = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  return o;
}


namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

Tensor random_bf16(const Shape& shape, uint32_t seed, float offset = 0.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(offset, 0.05f);
  Tensor t = Tensor::empty(shape, DType::BF16);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<uint16_t>()[i] = f32_to_bf16(nd(rng));
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// A tiny Qwen3-like source directory: one block with all seven projections (down_proj has K = 96, not a
// multiple of the group size 64), a second block whose up_proj has 40 outputs (not a multiple of 32), a bias on
// q_proj, embeddings, norms and lm_head.
struct SourceModel {
  std::string dir;
  std::vector<NamedTensor> tensors;

  explicit SourceModel(const std::string& d) : dir(d) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    uint32_t seed = 100;
    auto add = [&](const std::string& name, const Shape& shape) {
      tensors.push_back({name, random_bf16(shape, seed, 0.002f * float(seed % 5))});
      ++seed;
    };
    add("model.embed_tokens.weight", {100, 64});
    add("model.norm.weight", {64});
    add("lm_head.weight", {100, 64});
    add("model.layers.0.input_layernorm.weight", {64});
    add("model.layers.0.self_attn.q_proj.weight", {64, 64});
    add("model.layers.0.self_attn.q_proj.bias", {64});
    add("model.layers.0.self_attn.k_proj.weight", {32, 64});
    add("model.layers.0.self_attn.v_proj.weight", {32, 64});
    add("model.layers.0.self_attn.o_proj.weight", {64, 64});
    add("model.layers.0.mlp.gate_proj.weight", {96, 64});
    add("model.layers.0.mlp.up_proj.weight", {96, 64});
    add("model.layers.0.mlp.down_proj.weight", {64, 96});
    add("model.layers.1.mlp.up_proj.weight", {40, 64});
    add("model.layers.1.mlp.gate_proj.weight", {128, 64});
    write_safetensors(dir + "/model.safetensors", tensors);
    write_file_atomic(dir + "/config.json",
                      R"({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 64, "torch_dtype": "bfloat16"})");
    write_file_atomic(dir + "/tokenizer.json", R"({"model": {"type": "BPE"}})");
    write_file_atomic(dir + "/generation_config.json", R"({"do_sample": false})");
    write_file_atomic(dir + "/.hidden", "not copied");
    write_file_atomic(dir + "/pytorch_model.bin", "old weights, not copied");
  }
  const Tensor& get(const std::string& name) const {
    for (const NamedTensor& t : tensors)
      if (t.name == name) return t.tensor;
    OMNI_FAIL("no tensor ", name);
  }
};

std::string test_dir() {
  return std::string(OMNI_BINARY_DIR) + "/quant_test_tmp/" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

std::vector<std::string> leftovers(const std::string& parent) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(parent)) {
    const std::string n = e.path().filename().string();
    if (n.find(".tmp-") != std::string::npos || n.find(".old-") != std::string::npos) out.push_back(n);
  }
  return out;
}

const std::vector<std::string> kQuantized = {
    "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
    "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_proj",    "model.layers.0.mlp.up_proj",
    "model.layers.1.mlp.gate_proj"};
const std::vector<std::string> kSkipped = {"model.layers.0.mlp.down_proj", "model.layers.1.mlp.up_proj"};

// Reads `out` back and checks every tensor against the source: quantised layers dequantise bit-exactly to the
// RTN fake-quant weight, everything else is byte-identical.
void check_round_trip(const SourceModel& src, const std::string& out, const QuantScheme& scheme, bool with_g_idx) {
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(out);
  const std::optional<QuantizationConfig> cfg = read_quantization_config(out);
  ASSERT_TRUE(cfg.has_value());
  for (const std::string& p : kQuantized) {
    SCOPED_TRACE(p);
    EXPECT_TRUE(is_layer_quantized(*cfg, p));
    EXPECT_FALSE(ck.contains(p + ".weight"));
    EXPECT_EQ(ck.contains(p + ".g_idx"), with_g_idx);
    const Tensor& w = src.get(p + ".weight");
    const GroupedIntWeight q = read_quantized_linear(ck, p, *cfg, {w.dim(1), w.dim(0)});
    const Tensor got = dequantize_grouped_int_weight(q), want = fake_quantize_rtn(w, scheme);
    ASSERT_EQ(got.shape(), want.shape());
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), got.nbytes()), 0);
    EXPECT_EQ(ck.info(p + ".scales").dtype, DType::F16);
    if (scheme.sym) {
      const Tensor qz = ck.tensor(p + ".qzeros");
      for (int64_t i = 0; i < qz.numel(); ++i) ASSERT_EQ(qz.data<int32_t>()[i], 0x77777777);
    }
  }
  const Tensor bias = ck.tensor("model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(bias.dtype(), DType::F16);
  EXPECT_TRUE(same_bytes(bias, src.get("model.layers.0.self_attn.q_proj.bias").to(DType::F16)));
  for (const std::string& p : kSkipped) {
    EXPECT_FALSE(is_layer_quantized(*cfg, p)) << p;
    EXPECT_FALSE(ck.contains(p + ".qweight")) << p;
    EXPECT_TRUE(same_bytes(ck.tensor(p + ".weight"), src.get(p + ".weight"))) << p;
  }
  for (const char* n : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                        "model.layers.0.input_layernorm.weight"})
    EXPECT_TRUE(same_bytes(ck.tensor(n), src.get(n))) << n;
  EXPECT_FALSE(is_layer_quantized(*cfg, "lm_head"));
  EXPECT_FALSE(is_layer_quantized(*cfg, "model.embed_tokens"));
}

TEST(Export, RtnAutoRoundCheckpoint) {
  const std::string root = test_dir();
  fs::remove_all(root);
  const SourceModel src(root + "/src");
  const std::string out = root + "/out";
  RtnOptions o = decoder_rtn_options();
  o.scheme = QuantScheme{4, 64, true};
  const RtnSummary s = quantize_rtn_checkpoint(src.dir, out, o);
  EXPECT_EQ(s.quantized.size(), kQuantized.size());
  EXPECT_EQ(s.skipped, kSkipped);
  check_round_trip(src, out, o.scheme, /*with_g_idx=*/false);

  const ojson config = ojson::parse(read_text_file(out + "/config.json"));
  EXPECT_EQ(config["architectures"][0], "Qwen3ForCausalLM");
  const ojson& qc = config["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "auto-round");
  EXPECT_EQ(qc["packing_format"], "auto_round:auto_gptq");
  EXPECT_EQ(qc["bits"], 4);
  EXPECT_EQ(qc["group_size"], 64);
  EXPECT_EQ(qc["sym"], true);
  EXPECT_EQ(qc["data_type"], "int");
  EXPECT_EQ(qc["block_name_to_quantize"], "model.layers");
  EXPECT_EQ(qc["iters"], 0);
  EXPECT_EQ(qc["autoround_version"].get<std::string>().rfind("omniround", 0), 0u);
  EXPECT_EQ(qc["extra_config"], ojson::parse(R"({"model.layers.0.mlp.down_proj": {"bits": 16, "data_type": "fp"},
                                                  "model.layers.1.mlp.up_proj": {"bits": 16, "data_type": "fp"}})"));
  EXPECT_FALSE(qc.contains("desc_act"));
  EXPECT_FALSE(qc.contains("nsamples"));
  EXPECT_EQ(ojson::parse(read_text_file(out + "/quantization_config.json")), qc);

  EXPECT_EQ(read_text_file(out + "/tokenizer.json"), read_text_file(src.dir + "/tokenizer.json"));
  EXPECT_TRUE(file_exists(out + "/generation_config.json"));
  EXPECT_FALSE(file_exists(out + "/.hidden"));
  EXPECT_FALSE(file_exists(out + "/pytorch_model.bin"));
  EXPECT_TRUE(leftovers(root).empty());

  // Leave a checkpoint and its fake-quant reference in the build dir for tools/read_auto_round.py.
  const std::string fixture = std::string(OMNI_BINARY_DIR) + "/quant_export_fixture";
  o.overwrite = true;
  quantize_rtn_checkpoint(src.dir, fixture + "/checkpoint", o);
  std::vector<NamedTensor> ref;
  for (const std::string& p : kQuantized) ref.push_back({p + ".weight", fake_quantize_rtn(src.get(p + ".weight"), o.scheme)});
  write_safetensors(fixture + "/fake_quant_reference.safetensors", ref);
}

TEST(Export, AutoGptqCheckpoint) {
  const std::string root = test_dir();
  fs::remove_all(root);
  const SourceModel src(root + "/src");
  RtnOptions o = decoder_rtn_options();
  o.scheme = QuantScheme{4, 64, true};
  o.format = QuantizedCheckpointFormat::AutoGptq;
  quantize_rtn_checkpoint(src.dir, root + "/out", o);
  check_round_trip(src, root + "/out", o.scheme, /*with_g_idx=*/true);
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(root + "/out");
  const Tensor gi = ck.tensor("model.layers.0.self_attn.q_proj.g_idx");
  for (int k = 0; k < 64; ++k) EXPECT_EQ(gi.data<int32_t>()[k], k / 64);
  const ojson qc = ojson::parse(read_text_file(root + "/out/config.json"))["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "gptq");
  EXPECT_EQ(qc["desc_act"], false);
  EXPECT_EQ(qc["true_sequential"], false);
  EXPECT_EQ(qc["damp_percent"], 0.01);
  EXPECT_EQ(qc["checkpoint_format"], "gptq");
  EXPECT_TRUE(qc["dynamic"].contains("-:^model\\.layers\\.0\\.mlp\\.down_proj$"));
  EXPECT_FALSE(qc.contains("packing_format"));
}

TEST(Export, AsymmetricAndShardedAndTwoBit) {
  const std::string root = test_dir();
  fs::remove_all(root);
  const SourceModel src(root + "/src");
  for (const QuantScheme scheme :
       {QuantScheme{4, 32, false}, QuantScheme{2, 32, true}, QuantScheme{3, 32, true}, QuantScheme{8, -1, true}}) {
    RtnOptions o = decoder_rtn_options();
    o.scheme = scheme;
    o.max_shard_bytes = 20000;  // forces several shards
    o.overwrite = true;
    o.block_names = {"model.layers"};
    const RtnSummary s = quantize_rtn_checkpoint(src.dir, root + "/out", o);
    EXPECT_TRUE(file_exists(root + "/out/model.safetensors.index.json"));
    EXPECT_FALSE(file_exists(root + "/out/model.safetensors"));
    // K = 96 is a multiple of 32 (and of the per-channel group), so down_proj is quantised here.
    const bool down_quantized = scheme.group_size != 64;
    EXPECT_EQ(s.skipped.size(), down_quantized ? 1u : 2u);
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(root + "/out");
    const QuantizationConfig cfg = *read_quantization_config(root + "/out");
    for (const std::string& p : s.quantized) {
      const Tensor& w = src.get(p + ".weight");
      const Tensor got = dequantize_grouped_int_weight(read_quantized_linear(ck, p, cfg));
      const Tensor want = fake_quantize_rtn(w, scheme);
      EXPECT_EQ(std::memcmp(got.raw(), want.raw(), got.nbytes()), 0) << p << " bits " << scheme.bits;
    }
  }
}

TEST(Export, RefusesZeroPointZeroInMinusOneConvention) {
  const std::string root = test_dir();
  fs::remove_all(root);
  const SourceModel src(root + "/src");
  // All-positive weights: asymmetric zero point 0, which zero − 1 cannot store.
  Tensor w = Tensor::empty({32, 64}, DType::F32);
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = 0.01f + 0.001f * float(i % 13);
  QuantizedLinearOutput q{"model.layers.0.mlp.up_proj", quantize_rtn(w, QuantScheme{4, 32, false}), {}};
  QuantizationConfig cfg;
  cfg.sym = false;
  EXPECT_THROW(export_quantized_checkpoint(src.dir, root + "/out", {}, {q}, cfg), Error);
  EXPECT_FALSE(fs::exists(root + "/out"));
}

TEST(Export, ExistingOutputAndAtomicity) {
  const std::string root = test_dir();
  fs::remove_all(root);
  const SourceModel src(root + "/src");
  const std::string out = root + "/out";
  RtnOptions o = decoder_rtn_options();
  o.scheme = QuantScheme{4, 64, true};

  // A failure after the weights were written leaves no output directory and no temporary one.
  o.progress = [](const std::string& msg) {
    if (msg.rfind("wrote model", 0) == 0) throw Error("simulated failure after " + msg);
  };
  EXPECT_THROW(quantize_rtn_checkpoint(src.dir, out, o), Error);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(leftovers(root).empty());

  o.progress = nullptr;
  quantize_rtn_checkpoint(src.dir, out, o);
  try {
    quantize_rtn_checkpoint(src.dir, out, o);
    ADD_FAILURE() << "an existing output directory must be an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }

  // With overwrite, a failure mid-way keeps the old output intact.
  write_file_atomic(out + "/marker", "old output");
  o.overwrite = true;
  o.progress = [](const std::string& msg) {
    if (msg.rfind("copied", 0) == 0) throw Error("simulated failure after " + msg);
  };
  EXPECT_THROW(quantize_rtn_checkpoint(src.dir, out, o), Error);
  EXPECT_TRUE(file_exists(out + "/marker"));
  EXPECT_TRUE(leftovers(root).empty());
  // And a successful overwrite replaces it completely.
  o.progress = nullptr;
  o.scheme = QuantScheme{4, 32, true};
  quantize_rtn_checkpoint(src.dir, out, o);
  EXPECT_FALSE(file_exists(out + "/marker"));
  EXPECT_EQ(read_quantization_config(out)->group_size, 32);
  EXPECT_TRUE(leftovers(root).empty());

  // Quantising an already quantised checkpoint, or into the source directory, is refused.
  EXPECT_THROW(quantize_rtn_checkpoint(out, root + "/again", o), Error);
  EXPECT_THROW(quantize_rtn_checkpoint(src.dir, src.dir, o), Error);
}

}  // namespace
}  // namespace omni
