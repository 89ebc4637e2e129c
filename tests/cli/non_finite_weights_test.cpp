// A checkpoint whose weights hold NaN or Inf is refused by every command with one error naming the tensor, and no
// output is left behind (issue: AutoRound crashed, --rtn wrote a NaN checkpoint, eval printed "PPL nan").
#include <gtest/gtest.h>

#include "support/run_omniround.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/safetensors.h"

namespace {

namespace fs = std::filesystem;
using omni::testing_support::CommandResult;
using omni::testing_support::run_omniround;

const std::string kModel = std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/non_finite_weights_test.tmp";

// A copy of the shipped model with `count` bf16 values `bits` written at the start of tensor `name`.
std::string poisoned_model(const std::string& tag, const std::string& name, uint16_t bits, int count) {
  const std::string dir = kTmp + "/" + tag;
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kModel))
    if (e.is_regular_file()) fs::copy_file(e.path(), dir + "/" + e.path().filename().string());
  const std::string file = dir + "/model.safetensors";
  uint64_t at = 0;
  {
    const auto st = omni::SafetensorsFile::open(file);
    for (const omni::TensorInfo& t : st->header().tensors)
      if (t.name == name) at = st->header().data_offset + t.data_begin;
  }
  EXPECT_GT(at, 0u) << name;
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at));
  for (int i = 0; i < count; ++i) f.write(reinterpret_cast<const char*>(&bits), 2);
  return dir;
}

bool has(const CommandResult& r, const std::string& part) { return r.output.find(part) != std::string::npos; }

class NonFiniteWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(kTmp);
    fs::create_directories(kTmp);
  }
};

TEST_F(NonFiniteWeights, EveryCommandNamesTheTensor) {
  const uint16_t kNan = 0x7fc0, kInf = 0x7f80;
  struct Case {
    std::string tag, tensor;
    uint16_t bits;
    int count;
  };
  const Case cases[] = {{"nan-q", "model.layers.0.self_attn.q_proj.weight", kNan, 10},
                        {"nan-norm", "model.layers.1.input_layernorm.weight", kNan, 1},
                        {"inf-embed", "model.embed_tokens.weight", kInf, 64}};
  for (const Case& c : cases) {
    const std::string m = poisoned_model(c.tag, c.tensor, c.bits, c.count);
    const std::string data = " --dataset " + kModel + "/heldout.txt";
    const std::string commands[] = {
        "quantize " + m + " -o " + kTmp + "/out-rtn --rtn",
        "quantize " + m + " -o " + kTmp + "/out-ar --iters 5 --nsamples 8 --seqlen 64 --batch-size 4",
        "eval " + m + data + " --max-windows 1",
        "eval " + kModel + data + " --reference " + m + " --max-windows 1",
        "generate " + m + " -p hello -n 4",
    };
    for (const std::string& cmd : commands) {
      const CommandResult r = run_omniround(cmd);
      EXPECT_EQ(r.status, 1) << cmd << "\n" << r.output;
      EXPECT_TRUE(has(r, "omniround: error:")) << cmd << "\n" << r.output;
      EXPECT_TRUE(has(r, c.tensor)) << cmd << "\n" << r.output;
      EXPECT_TRUE(has(r, "NaN or Inf")) << cmd << "\n" << r.output;
    }
    EXPECT_FALSE(fs::exists(kTmp + "/out-rtn"));
    EXPECT_FALSE(fs::exists(kTmp + "/out-ar"));
  }
}

}  // namespace
