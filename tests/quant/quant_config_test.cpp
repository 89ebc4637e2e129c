#include "quant/quant_config.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "quant/layer_selection.h"

namespace omni {
namespace {

using ojson = nlohmann::ordered_json;

std::string error_of(const ojson& j) {
  try {
    parse_quantization_config(j, "/m/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(QuantConfig, ParsesAutoRoundSection) {
  const ojson j = ojson::parse(R"({
    "bits": 4, "group_size": 128, "sym": true, "data_type": "int", "autoround_version": "0.15.0",
    "block_name_to_quantize": "model.layers", "quant_method": "auto-round",
    "packing_format": "auto_round:auto_gptq", "iters": 50, "lr": 0.01, "minmax_lr": 0.02, "static_kv_granularity": "tensor",
    "extra_config": {"model.layers.0.mlp.down_proj": {"bits": 16, "data_type": "fp"},
                     ".*self_attn\\.o_proj$": {"bits": 8, "group_size": 32}}})");
  const QuantizationConfig c = parse_quantization_config(j, "/m/config.json");
  EXPECT_EQ(c.quant_method, "auto-round");
  EXPECT_EQ(c.bits, 4);
  EXPECT_EQ(c.group_size, 128);
  EXPECT_TRUE(c.sym);
  EXPECT_TRUE(c.packing_format_given);
  EXPECT_EQ(c.declared_zero_point_convention(), ZeroPointConvention::MinusOne);
  ASSERT_EQ(c.block_name_to_quantize, std::vector<std::string>{"model.layers"});
  ASSERT_EQ(c.extra_config.size(), 2u);
  EXPECT_EQ(c.extra_config[0].key, "model.layers.0.mlp.down_proj");
  EXPECT_EQ(c.extra_config[0].value.bits, 16);
  EXPECT_EQ(c.extra_config[1].value.group_size, 32);
  EXPECT_EQ(c.tuning["iters"], 50);
  EXPECT_EQ(c.other["static_kv_granularity"], "tensor");

  // Written back: same content, in §5's order, unknown keys kept.
  const ojson out = to_json(c);
  EXPECT_EQ(out["extra_config"], j["extra_config"]);
  EXPECT_EQ(out["iters"], 50);
  EXPECT_EQ(out["lr"], 0.01);
  EXPECT_FALSE(out.contains("minmax_lr"));  // = 1/iters: a default
  EXPECT_EQ(out["static_kv_granularity"], "tensor");
  EXPECT_EQ(out.begin().key(), "bits");
  EXPECT_EQ(parse_quantization_config(out, "round trip").extra_config.size(), 2u);
}

TEST(QuantConfig, OmitsDefaults) {
  QuantizationConfig c;
  c.block_name_to_quantize = {"transformer_blocks", "single_transformer_blocks"};
  c.tuning["iters"] = 200;
  c.tuning["lr"] = 0.005;         // = 1/iters: default
  c.tuning["nsamples"] = 128;     // default
  c.tuning["seqlen"] = 512;       // not default
  c.tuning["enable_quanted_input"] = true;
  const ojson out = to_json(c);
  EXPECT_FALSE(out.contains("iters"));
  EXPECT_FALSE(out.contains("lr"));
  EXPECT_FALSE(out.contains("nsamples"));
  EXPECT_FALSE(out.contains("enable_quanted_input"));
  EXPECT_FALSE(out.contains("extra_config"));
  EXPECT_EQ(out["seqlen"], 512);
  EXPECT_EQ(out["block_name_to_quantize"], "transformer_blocks,single_transformer_blocks");
  EXPECT_EQ(out["quant_method"], "auto-round");
  EXPECT_EQ(out["packing_format"], "auto_round:auto_gptq");
  // RTN records iters 0, and lr is then not 1/iters of anything.
  QuantizationConfig r;
  r.tuning["iters"] = 0;
  EXPECT_EQ(to_json(r)["iters"], 0);
}

TEST(QuantConfig, ErrorsNameTheFieldAndFile) {
  std::string e = error_of(ojson::parse(R"({"quant_method": "auto-round", "group_size": 128})"));
  EXPECT_NE(e.find("/m/config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("bits"), std::string::npos) << e;
  e = error_of(ojson::parse(R"({"quant_method": "auto-round", "bits": "4", "group_size": 128})"));
  EXPECT_NE(e.find("quantization_config.bits"), std::string::npos) << e;
  e = error_of(ojson::parse(R"({"quant_method": "auto-round", "bits": 5, "group_size": 128})"));
  EXPECT_NE(e.find("bits"), std::string::npos) << e;
  e = error_of(ojson::parse(R"({"quant_method": "awq", "bits": 4, "group_size": 128})"));
  EXPECT_NE(e.find("quant_method"), std::string::npos) << e;
  e = error_of(ojson::parse(R"({"quant_method": "gptq", "bits": 4, "group_size": 0})"));
  EXPECT_NE(e.find("group_size"), std::string::npos) << e;
  e = error_of(ojson::parse(R"({"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": 1})"));
  EXPECT_NE(e.find("sym"), std::string::npos) << e;
  e = error_of(ojson::parse(
      R"({"quant_method": "auto-round", "bits": 4, "group_size": 128, "extra_config": {"a": {"bits": 7}}})"));
  EXPECT_NE(e.find("extra_config[\"a\"].bits"), std::string::npos) << e;
  // Issue 7, finding 9: out-of-range numbers are named as found, not wrapped to 0.
  e = error_of(ojson::parse(R"({"quant_method": "auto-round", "bits": 1e30, "group_size": 128})"));
  EXPECT_NE(e.find("quantization_config.bits: expected an integer, found 1e+30"), std::string::npos) << e;
  e = error_of(ojson::parse(R"({"quant_method": "auto-round", "bits": 4, "group_size": 18446744073709551615})"));
  EXPECT_NE(e.find("group_size: expected an integer, found 18446744073709551615 (out of range)"), std::string::npos)
      << e;
  // Issue 7, config fuzzer: bits were narrowed to int before the check, so 2^32 + 4 read as 4.
  e = error_of(ojson::parse(R"({"quant_method": "auto-round", "bits": 4294967300, "group_size": 128})"));
  EXPECT_NE(e.find("quantization_config.bits: expected 2, 3, 4 or 8, found 4294967300"), std::string::npos) << e;
  e = error_of(ojson::parse(
      R"({"quant_method": "auto-round", "bits": 4, "group_size": 128, "extra_config": {"a": {"bits": 4294967312}}})"));
  EXPECT_NE(e.find("extra_config[\"a\"].bits: expected 2, 3, 4 or 8 (or >= 16 for 16-bit), found 4294967312"),
            std::string::npos)
      << e;
}

// Issue 7, config fuzzer: a layer named both in extra_config and in dynamic was written back with the second
// entry's settings, though the first is the one that applies.
TEST(QuantConfig, RepeatedKeyIsWrittenWithTheEntryThatApplies) {
  const ojson j = ojson::parse(R"({"quant_method": "auto-round", "bits": 4, "group_size": 128,
      "extra_config": {"model.layers.0.mlp.up_proj": {"bits": 8}},
      "dynamic": {"+:model.layers.0.mlp.up_proj": {"bits": 2}}})");
  const QuantizationConfig c = parse_quantization_config(j, "q.json");
  ASSERT_EQ(c.extra_config.size(), 2u);
  EXPECT_EQ(resolve_layer_quantization(c, "model.layers.0.mlp.up_proj").scheme.bits, 8);
  const ojson out = to_json(c);
  EXPECT_EQ(out["extra_config"]["model.layers.0.mlp.up_proj"]["bits"], 8) << out.dump();
  const QuantizationConfig back = parse_quantization_config(out, "back");
  EXPECT_EQ(resolve_layer_quantization(back, "model.layers.0.mlp.up_proj").scheme.bits, 8);
  // The same through the GPTQ writer's "dynamic".
  QuantizationConfig g = c;
  g.quant_method = "gptq";
  const QuantizationConfig gback = parse_quantization_config(to_json(g), "back");
  EXPECT_EQ(resolve_layer_quantization(gback, "model.layers.0.mlp.up_proj").scheme.bits, 8);
}

TEST(QuantConfig, ReadsTheSectionOfConfigText) {
  EXPECT_FALSE(read_quantization_config_text(R"({"architectures": ["Qwen3ForCausalLM"]})", "c.json").has_value());
  const auto q = read_quantization_config_text(
      R"({"quantization_config": {"quant_method": "gptq", "bits": 8, "group_size": -1}})", "c.json");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->bits, 8);
  EXPECT_EQ(q->group_size, -1);
  try {
    read_quantization_config_text("{\"quantization_config\": ", "c.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.json: invalid JSON"), std::string::npos) << e.what();
  }
}

TEST(QuantConfig, GptqDynamicAndConventions) {
  const ojson j = ojson::parse(R"({"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": false,
      "desc_act": false, "checkpoint_format": "gptq_v2",
      "dynamic": {"-:model\\.layers\\.1\\.mlp\\..*": {}, "+:.*v_proj": {"bits": 8}}})");
  const QuantizationConfig c = parse_quantization_config(j, "q.json");
  EXPECT_TRUE(c.is_gptq());
  EXPECT_EQ(c.declared_zero_point_convention(), ZeroPointConvention::Real);
  EXPECT_FALSE(is_layer_quantized(c, "model.layers.1.mlp.up_proj"));
  EXPECT_TRUE(is_layer_quantized(c, "model.layers.11.mlp.up_proj"));
  EXPECT_EQ(resolve_layer_quantization(c, "model.layers.3.self_attn.v_proj").scheme.bits, 8);
  // Without checkpoint_format nothing is declared; with "gptq" zero − 1.
  QuantizationConfig d = c;
  d.checkpoint_format.clear();
  EXPECT_EQ(d.declared_zero_point_convention(), ZeroPointConvention::Unknown);
  d.checkpoint_format = "gptq";
  EXPECT_EQ(d.declared_zero_point_convention(), ZeroPointConvention::MinusOne);
  // auto-round without packing_format declares nothing; native auto_round is the real zero.
  QuantizationConfig a;
  EXPECT_EQ(a.declared_zero_point_convention(), ZeroPointConvention::Unknown);
  a.packing_format_given = true;
  a.packing_format = "auto_round";
  EXPECT_EQ(a.declared_zero_point_convention(), ZeroPointConvention::Real);
  // gptq writing: 16-bit layers become "-:" dynamic entries anchored on the exact name.
  QuantizationConfig w;
  w.quant_method = "gptq";
  w.extra_config.push_back({"model.layers.0.mlp.down_proj", LayerOverride{16, {}, {}, "fp", {}}, false});
  const ojson out = to_json(w);
  EXPECT_TRUE(out["dynamic"].contains("-:^model\\.layers\\.0\\.mlp\\.down_proj$"));
  EXPECT_EQ(out["desc_act"], false);
  EXPECT_EQ(out["damp_percent"], 0.01);
  EXPECT_EQ(out["true_sequential"], false);
  const QuantizationConfig back = parse_quantization_config(out, "back");
  EXPECT_FALSE(is_layer_quantized(back, "model.layers.0.mlp.down_proj"));
  EXPECT_TRUE(is_layer_quantized(back, "model.layers.0.mlp.down_proj2"));
  EXPECT_TRUE(is_layer_quantized(back, "model.layers.10.mlp.down_proj"));
}

TEST(LayerSelection, BlocksExactNamesAndRegexes) {
  QuantizationConfig c;
  c.block_name_to_quantize = {"model.layers"};
  c.extra_config.push_back({"model.layers.1.mlp.gate", LayerOverride{16, {}, {}, "fp", {}}, false});
  c.extra_config.push_back({"model.layers.2.self_attn.q_proj", LayerOverride{8, 32, false, {}, {}}, false});
  c.extra_config.push_back({".*layers\\.3\\..*_proj$", LayerOverride{16, {}, {}, {}, {}}, false});
  c.extra_config.push_back({".*layers\\.3\\.mlp.*", LayerOverride{2, {}, {}, {}, {}}, false});  // later: loses
  c.extra_config.push_back({"model.layers.3.mlp.up_proj", LayerOverride{8, {}, {}, {}, {}}, false});  // exact wins
  c.extra_config.push_back({"lm_head", LayerOverride{4, {}, {}, {}, {}}, false});

  EXPECT_TRUE(is_layer_quantized(c, "model.layers.0.self_attn.q_proj"));
  EXPECT_FALSE(is_layer_quantized(c, "model.embed_tokens"));
  EXPECT_FALSE(is_layer_quantized(c, "visual.blocks.0.attn.qkv"));
  EXPECT_TRUE(is_layer_quantized(c, "lm_head"));  // an exact extra_config entry outside the blocks
  // An exact key is not a regex: the router "mlp.gate" does not capture "mlp.gate_proj".
  EXPECT_FALSE(is_layer_quantized(c, "model.layers.1.mlp.gate"));
  EXPECT_TRUE(is_layer_quantized(c, "model.layers.1.mlp.gate_proj"));
  const LayerQuantization q = resolve_layer_quantization(c, "model.layers.2.self_attn.q_proj");
  EXPECT_TRUE(q.quantized);
  EXPECT_EQ(q.scheme.bits, 8);
  EXPECT_EQ(q.scheme.group_size, 32);
  EXPECT_FALSE(q.scheme.sym);
  EXPECT_EQ(resolve_layer_quantization(c, "model.layers.2.self_attn.k_proj").scheme.bits, 4);
  // Regex: re.search semantics, the first matching key wins.
  EXPECT_FALSE(is_layer_quantized(c, "model.layers.3.self_attn.k_proj"));
  EXPECT_FALSE(is_layer_quantized(c, "model.layers.3.mlp.down_proj"));
  EXPECT_TRUE(is_layer_quantized(c, "model.layers.3.mlp.up_proj"));
  EXPECT_EQ(resolve_layer_quantization(c, "model.layers.3.mlp.up_proj").scheme.bits, 8);
  EXPECT_TRUE(is_layer_quantized(c, "model.layers.13.self_attn.k_proj"));
  // Several block lists.
  QuantizationConfig f;
  f.block_name_to_quantize = {"transformer_blocks", "single_transformer_blocks"};
  EXPECT_TRUE(is_layer_quantized(f, "single_transformer_blocks.3.proj_mlp"));
  EXPECT_FALSE(is_layer_quantized(f, "proj_out"));
  // No block list: everything but an unquantised lm_head.
  QuantizationConfig g;
  g.quant_method = "gptq";
  EXPECT_TRUE(is_layer_quantized(g, "model.layers.0.mlp.up_proj"));
  EXPECT_FALSE(is_layer_quantized(g, "lm_head"));
  g.lm_head = true;
  EXPECT_TRUE(is_layer_quantized(g, "lm_head"));
}

TEST(LayerSelection, RegexSearchIsPythonLike) {
  EXPECT_TRUE(regex_search("mlp\\.down", "model.layers.0.mlp.down_proj"));
  EXPECT_FALSE(regex_search("mlp\\.down", "model.layers.0.mlp.down_proj", /*anchored_at_start=*/true));
  EXPECT_TRUE(regex_search("model\\.layers\\.(?P<i>\\d+)\\.mlp", "model.layers.7.mlp.up_proj", true));
  EXPECT_FALSE(regex_search("(unclosed", "(unclosed"));  // invalid patterns match nothing
}

}  // namespace
}  // namespace omni
