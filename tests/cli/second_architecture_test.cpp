// The second architecture (Qwen2: q/k/v biases, no q/k norm) through every command, with no code of its own
// outside models/qwen2 and its registry line: generate, inspect, quantize with AutoRound and RTN (biases carried
// into the checkpoint), and the quantized checkpoints generate and evaluate against the BF16 original.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "support/run_omniround.h"

namespace {

using omni::testing_support::run_omniround;
namespace fs = std::filesystem;

const std::string kModel = std::string(OMNI_SOURCE_DIR) + "/tests/data/qwen2/bias";
const std::string kText = std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3/calibration.txt";
const std::string kOut = std::string(OMNI_BINARY_DIR) + "/second_architecture_test.out";

TEST(SecondArchitecture, Qwen2GeneratesQuantizesAndEvaluates) {
  fs::remove_all(kOut);
  fs::create_directories(kOut);
  auto gen = run_omniround("generate " + kModel + " -p \"The king\" -n 8");
  ASSERT_EQ(gen.status, 0) << gen.output;
  EXPECT_NE(gen.output.find("Qwen2ForCausalLM"), std::string::npos) << gen.output;
  EXPECT_NE(gen.output.find("generated: 8 tokens"), std::string::npos) << gen.output;

  auto insp = run_omniround("inspect " + kModel);
  ASSERT_EQ(insp.status, 0) << insp.output;
  EXPECT_NE(insp.output.find("Qwen2ForCausalLM (2 layers, hidden 128"), std::string::npos) << insp.output;

  for (const std::string mode : {"--rtn", "--iters 4 --nsamples 8 --seqlen 32 --batch-size 4"}) {
    const std::string out = kOut + (mode == "--rtn" ? "/rtn" : "/autoround");
    auto q = run_omniround("quantize " + kModel + " -o " + out + " " + mode + " --dataset " + kText);
    ASSERT_EQ(q.status, 0) << mode << "\n" << q.output;
    // The q/k/v biases stay with their quantized Linears (F16, as auto-round writes them).
    const auto ckpt = omni::SafetensorsCheckpoint::open_dir(out);
    for (const char* p : {"q_proj", "k_proj", "v_proj"}) {
      const std::string prefix = std::string("model.layers.1.self_attn.") + p;
      EXPECT_TRUE(ckpt.contains(prefix + ".qweight")) << mode << " " << prefix;
      ASSERT_TRUE(ckpt.contains(prefix + ".bias")) << mode << " " << prefix;
    }
    auto g = run_omniround("generate " + out + " -p \"The king\" -n 4");
    ASSERT_EQ(g.status, 0) << mode << "\n" << g.output;
    // 14 block Linears quantized; the untied lm_head stays 16-bit
    EXPECT_NE(g.output.find("14 quantized / 1 dense"), std::string::npos) << g.output;
    auto e = run_omniround("eval " + out + " --reference " + kModel + " --dataset " + kText +
                           " --ctx 64 --max-tokens 2048");
    ASSERT_EQ(e.status, 0) << mode << "\n" << e.output;
    EXPECT_NE(e.output.find("KLD"), std::string::npos) << e.output;
  }
}

}  // namespace
