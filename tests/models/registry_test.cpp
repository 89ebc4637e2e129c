#include "models/registry.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "io/file_util.h"
#include "io/json_fields.h"
#include "models/qwen2/qwen2.h"
#include "models/qwen3/qwen3.h"

namespace omni {
namespace {

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/data/config/";

// What the registry does with a config file: the architecture check, then that architecture's parser.
void open_file(const std::string& path) {
  const std::string dir = std::string(OMNI_BINARY_DIR) + "/registry_test_config";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(path, dir + "/config.json", std::filesystem::copy_options::overwrite_existing);
  try {
    describe_model(dir);
  } catch (const Error& e) {
    // The registry names the copy; report the original file as the parser would.
    std::string msg = e.what();
    const std::string copy = dir + "/config.json";
    for (size_t at; (at = msg.find(copy)) != std::string::npos;) msg.replace(at, copy.size(), path);
    throw Error(msg);
  }
}
DecoderSpec parse_file(const std::string& path) { return parse_qwen3_config(read_json_file(path), path); }

TEST(ModelConfig, ParsesQwen3Config) {
  const DecoderSpec c = parse_file(kDir + "valid.json");
  EXPECT_EQ(c.architecture, "Qwen3ForCausalLM");
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(c.bos_token_id, 1);
}

TEST(ModelConfig, ReadsTransformers5RopeParameters) {
  nlohmann::json j = read_json_file(kDir + "valid.json");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5000.0}};
  j.erase("head_dim");  // falls back to hidden / heads
  const DecoderSpec c = parse_qwen3_config(j, "mem");
  EXPECT_DOUBLE_EQ(c.rope_theta, 5000.0);
  EXPECT_EQ(c.head_dim, 64);
  j["rope_parameters"]["rope_type"] = "yarn";
  EXPECT_THROW(parse_qwen3_config(j, "mem"), Error);
}

// Every broken file fails with a message naming the file and the field at fault.
TEST(ModelConfig, BrokenFilesGiveClearErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"unknown_architecture",
       "unsupported architecture \"LlamaForCausalLM\"; this build supports: Qwen2ForCausalLM, Qwen3ForCausalLM"},
      {"missing_hidden_size", "missing required field \"hidden_size\""},
      {"string_vocab_size", "\"vocab_size\" must be an integer"},
      {"negative_layers", "\"num_hidden_layers\" must be positive"},
      {"heads_not_multiple_of_kv", "must be a multiple of num_key_value_heads"},
      {"rope_scaling", "\"rope_scaling\" is not supported"},
      {"sliding_window", "use_sliding_window"},
      {"eos_outside_vocab", "eos_token_id 5000 is outside the vocabulary"},
      {"missing_rope_theta", "missing required field \"rope_theta\""},
      {"architectures_not_list", "\"architectures\" must be a list"},
      {"not_json", "invalid JSON"},
      {"top_level_array", "config must be a JSON object"},
      // Issue 7, found by the config fuzzer.
      {"hidden_not_multiple_of_heads", "hidden_size (2) is not a multiple of num_attention_heads (4)"},
      {"size_too_large", "\"num_attention_heads\" must be at most 2147483647, found 1099511627776"},
      {"deep_nesting", "invalid JSON: nested deeper than 512 levels"},
  };
  for (const auto& [name, fragment] : cases) {
    const std::string path = kDir + "broken/" + name + ".json";
    try {
      open_file(path);
      ADD_FAILURE() << path << " was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(fragment), std::string::npos) << "expected \"" << fragment << "\" in: " << msg;
    }
  }
}

// The text entry points (used by the config fuzzer) are the directory ones minus the file read.
TEST(ModelConfig, ConfigTextGivesTheSameModelAsTheDirectory) {
  const std::string dir = std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3";
  const std::string text = read_text_file(dir + "/config.json");
  EXPECT_EQ(describe_model_config(text, "mem/config.json"), describe_model(dir));
  EXPECT_EQ(open_quantizable_model_config(text, "mem/config.json")->num_blocks(),
            open_quantizable_model(dir)->num_blocks());
  try {
    describe_model_config("{}", "mem/config.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mem/config.json: missing required field \"architectures\""),
              std::string::npos)
        << e.what();
  }
}

TEST(ModelConfig, MissingConfigNamesTheDirectory) {
  try {
    describe_model(kDir + "broken");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no config.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace omni

namespace omni {
namespace {

TEST(ModelConfig, EachArchitectureSetsItsOwnFeatures) {
  nlohmann::json j = read_json_file(kDir + "valid.json");
  const DecoderSpec q3 = parse_qwen3_config(j, "mem");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_FALSE(q3.qkv_bias);
  const DecoderSpec q2 = parse_qwen2_config(j, "mem");
  EXPECT_FALSE(q2.qk_norm);
  EXPECT_TRUE(q2.qkv_bias);  // Qwen2 always has q/k/v biases
  EXPECT_FALSE(q2.o_bias);
  j["attention_bias"] = true;
  const DecoderSpec q3b = parse_qwen3_config(j, "mem");
  EXPECT_TRUE(q3b.qkv_bias && q3b.o_bias);  // Qwen3's attention_bias covers o_proj too, as in transformers
  EXPECT_EQ(supported_architectures(), (std::vector<std::string>{"Qwen2ForCausalLM", "Qwen3ForCausalLM"}));
}

}  // namespace
}  // namespace omni
