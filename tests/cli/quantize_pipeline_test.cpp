// `omniround quantize` of a diffusers pipeline folder (issue 9): the FLUX transformer is quantized, every other
// component copied. The transformer's tensors must equal, byte for byte, the independent numpy RTN + packer's
// (tests/data/flux/tiny-w4a16, tools/make_flux_fixtures.py), and the folder must load with the quantized weights.
#include <gtest/gtest.h>

#include "support/run_omniround.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/file_util.h"
#include "io/safetensors.h"

namespace {

namespace fs = std::filesystem;
using Result = omni::testing_support::CommandResult;
Result run(const std::string& args) { return omni::testing_support::run_omniround(args); }
bool has(const Result& r, const std::string& part) { return r.output.find(part) != std::string::npos; }

const std::string kFlux = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/quantize_pipeline_test.tmp";

class QuantizePipeline : public ::testing::Test {
 protected:
  // A pipeline folder: model_index.json, the fixture's transformer, and a scheduler component to be copied.
  void SetUp() override {
    fs::remove_all(kTmp);
    fs::create_directories(kTmp + "/in/scheduler");
    fs::copy(kFlux + "/tiny/transformer", kTmp + "/in/transformer", fs::copy_options::recursive);
    std::ofstream(kTmp + "/in/model_index.json")
        << R"({"_class_name": "FluxPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],)"
        << R"( "transformer": ["diffusers", "FluxTransformer2DModel"]})";
    std::ofstream(kTmp + "/in/scheduler/scheduler_config.json") << R"({"shift": 3.0, "use_dynamic_shifting": true})";
  }
};

TEST_F(QuantizePipeline, RtnOfTheTransformerEqualsTheIndependentPackerAndTheRestIsCopied) {
  const Result r = run("quantize " + kTmp + "/in -o " + kTmp + "/out --rtn --group-size 32");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r, "quantized 40 linear layers (0 left 16-bit)")) << r.output;
  for (const char* f : {"model_index.json", "scheduler/scheduler_config.json"})
    EXPECT_EQ(omni::read_text_file(kTmp + "/in/" + f), omni::read_text_file(kTmp + "/out/" + f)) << f;
  const std::string config = omni::read_text_file(kTmp + "/out/transformer/config.json");
  EXPECT_NE(config.find("\"block_name_to_quantize\": \"transformer_blocks,single_transformer_blocks\""),
            std::string::npos) << config;
  ASSERT_TRUE(fs::exists(kTmp + "/out/transformer/diffusion_pytorch_model.safetensors"));

  const auto ours = omni::SafetensorsCheckpoint::open_dir(kTmp + "/out/transformer", "diffusion_pytorch_model");
  const auto ref = omni::SafetensorsCheckpoint::open_dir(kFlux + "/tiny-w4a16/transformer", "diffusion_pytorch_model");
  ASSERT_EQ(ours.names(), ref.names());
  for (const std::string& n : ref.names()) {
    const omni::Tensor a = ours.tensor(n), b = ref.tensor(n);
    ASSERT_EQ(a.dtype(), b.dtype()) << n;
    ASSERT_EQ(a.shape(), b.shape()) << n;
    EXPECT_EQ(0, std::memcmp(a.raw(), b.raw(), a.nbytes())) << n << " differs from the numpy reference";
  }
}

// AutoRound calibrates by running the pipeline on captions: this folder has no text encoders (the tiny t2i folder
// of quantize_pipeline_autoround_test has them).
TEST_F(QuantizePipeline, AutoRoundWithoutTextEncodersIsRefusedClearlyAndNothingIsWritten) {
  std::ofstream(kTmp + "/captions.txt") << "a red bicycle\n";
  const Result r = run("quantize " + kTmp + "/in -o " + kTmp + "/out --iters 2 --dataset " + kTmp + "/captions.txt");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "has no tokenizer/ component; AutoRound calibrates")) << r.output;
  EXPECT_FALSE(fs::exists(kTmp + "/out"));
  EXPECT_FALSE(fs::exists(kTmp + "/out.partial"));
}

TEST_F(QuantizePipeline, AnotherTransformerClassIsRefusedNamingTheField) {
  std::ofstream(kTmp + "/in/model_index.json") << R"({"transformer": ["diffusers", "SD3Transformer2DModel"]})";
  const Result r = run("quantize " + kTmp + "/in -o " + kTmp + "/out --rtn");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "model_index.json: field \"transformer\"")) << r.output;
  EXPECT_FALSE(fs::exists(kTmp + "/out"));
}

TEST_F(QuantizePipeline, OverwriteReplacesAnEarlierOutputOnly) {
  ASSERT_EQ(run("quantize " + kTmp + "/in -o " + kTmp + "/out --rtn --group-size 32").status, 0);
  const Result again = run("quantize " + kTmp + "/in -o " + kTmp + "/out --rtn --group-size 32");
  EXPECT_EQ(again.status, 1) << again.output;
  EXPECT_TRUE(has(again, "--overwrite")) << again.output;
  const Result over = run("quantize " + kTmp + "/in -o " + kTmp + "/out --rtn --group-size 32 --overwrite");
  EXPECT_EQ(over.status, 0) << over.output;
  fs::create_directories(kTmp + "/foreign");
  std::ofstream(kTmp + "/foreign/model_index.json") << "{}";
  const Result foreign = run("quantize " + kTmp + "/in -o " + kTmp + "/foreign --rtn --overwrite");
  EXPECT_EQ(foreign.status, 1) << foreign.output;
  EXPECT_TRUE(fs::exists(kTmp + "/foreign/model_index.json"));
}

}  // namespace
