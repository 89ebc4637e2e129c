// A config.json that disagrees with its checkpoint is an error naming the mismatch, not a model that runs with the
// wrong numbers (issue 7, finding 8): fewer layers than the checkpoint has, a stray tensor, an activation the
// block does not compute.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "models/registry.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

const std::string kModel = std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/config_mismatch_test.tmp";

// A copy of the shipped model whose config.json has `from` replaced by `to` (which must occur).
std::string edited_copy(const std::string& tag, const std::string& from, const std::string& to) {
  const std::string dir = kTmp + "/" + tag;
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kModel))
    if (e.is_regular_file()) fs::copy_file(e.path(), dir + "/" + e.path().filename().string());
  std::ifstream in(dir + "/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string cfg = ss.str();
  const size_t at = cfg.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  cfg.replace(at, from.size(), to);
  std::ofstream(dir + "/config.json") << cfg;
  return dir;
}

std::string load_error(const std::string& dir) {
  try {
    open_causal_lm(dir, cpu_backend());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigMismatch, FewerLayersThanTheCheckpointIsAnError) {
  const std::string msg = load_error(edited_copy("layers4", "\"num_hidden_layers\": 8", "\"num_hidden_layers\": 4"));
  EXPECT_NE(msg.find("does not use"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.4."), std::string::npos) << msg;
  EXPECT_NE(msg.find("num_hidden_layers 4"), std::string::npos) << msg;
}

TEST(ConfigMismatch, AnotherActivationIsAnError) {
  const std::string msg = load_error(edited_copy("gelu", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\""));
  EXPECT_NE(msg.find("hidden_act \"gelu\" is not supported"), std::string::npos) << msg;
}

TEST(ConfigMismatch, TheShippedModelUsesEveryTensor) {
  EXPECT_EQ(load_error(kModel), "");  // the check must not refuse a consistent checkpoint
}

}  // namespace
}  // namespace omni
