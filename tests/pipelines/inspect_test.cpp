#include "pipelines/inspect.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/json_fields.h"
#include "io/safetensors.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
const std::string kData = std::string(OMNI_SOURCE_DIR) + "/tests/data/qwen3/";

uint64_t sum_file_sizes(const std::string& dir, bool safetensors_only) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && (!safetensors_only || e.path().extension() == ".safetensors") &&
        e.path().filename() != "golden.safetensors")
      total += e.file_size();
  return total;
}

// The sizes inspect reports are the files' sizes; parameter counts follow the config.
TEST(Inspect, SizesMatchTheFiles) {
  for (const std::string name : {"untied", "untied-w4a16", "untied-w4a16-gptq"}) {
    const std::string dir = kData + name;
    const CheckpointInspection c = inspect_checkpoint(dir);
    uint64_t all_files = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file()) all_files += e.file_size();
    EXPECT_EQ(c.directory_bytes, all_files) << name;
    EXPECT_EQ(c.safetensors_file_bytes, sum_file_sizes(dir, true)) << name;

    const nlohmann::json k = read_json_file(dir + "/config.json");
    const int64_t D = k["hidden_size"], H = k["num_attention_heads"], Hkv = k["num_key_value_heads"];
    const int64_t hd = k["head_dim"], I = k["intermediate_size"], L = k["num_hidden_layers"], V = k["vocab_size"];
    const int64_t per_layer = D * H * hd * 2 + D * Hkv * hd * 2 + 3 * D * I + 2 * D + 2 * hd;
    const int64_t expected = L * per_layer + V * D * 2 + D;
    EXPECT_EQ(c.parameters, expected) << name;
    const std::string text = format_inspection(c);
    EXPECT_NE(text.find(std::to_string(c.directory_bytes) + " bytes"), std::string::npos) << text;
  }
}

TEST(Inspect, ReportsQuantization) {
  const CheckpointInspection bf16 = inspect_checkpoint(kData + "untied");
  EXPECT_TRUE(bf16.quantization.empty());
  EXPECT_EQ(bf16.quantized_parameters, 0);
  const CheckpointInspection w4 = inspect_checkpoint(kData + "untied-w4a16");
  EXPECT_NE(w4.quantization.find("W4 group 128 sym"), std::string::npos) << w4.quantization;
  EXPECT_EQ(w4.quantized_linears, 2 * 7);
  const CheckpointInspection gptq = inspect_checkpoint(kData + "untied-w4a16-gptq");
  EXPECT_EQ(gptq.quantized_linears, 2 * 7 - 1);  // layer 0 down_proj kept BF16 through extra_config
  EXPECT_EQ(gptq.parameters, w4.parameters);
  EXPECT_LT(w4.tensor_bytes, bf16.tensor_bytes);
}

}  // namespace
}  // namespace omni
