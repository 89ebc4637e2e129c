// The flow-matching Euler sampler against diffusers' FlowMatchEulerDiscreteScheduler as FluxPipeline sets it up
// (tools/make_flux_pipeline_fixtures.py): the sigmas and timesteps of FLUX.1-dev's config (dynamic exponential
// shift) at 28 steps / 4096 tokens (1024²), 4 / 256, 4 / 1024 and 1 / 4096, of schnell's (static shift 1), of a
// static shift 3 and of the linear time shift; then four Euler steps on given tensors in float32 and in BF16. All
// compared bit for bit: the schedule is a handful of float32 operations that the C++ performs in the same order.
// Also the config fields this sampler refuses.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "pipelines/diffusion/flow_match_euler.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/pipeline";

std::vector<float> values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

// Exact equality, reporting the first differing entry and the largest difference.
void expect_bits(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  size_t first = got.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      if (first == got.size()) first = i;
      worst = std::max(worst, std::abs(static_cast<double>(got[i]) - want[i]));
    }
  EXPECT_EQ(first, got.size()) << what << ": entry " << first << " is " << got[first] << ", diffusers has "
                               << want[first] << " (max abs diff " << worst << ")";
}

class FlowMatchEulerGolden : public ::testing::Test {
 protected:
  void SetUp() override { golden_ = SafetensorsFile::open(kDir + "/golden.safetensors"); }
  std::shared_ptr<SafetensorsFile> golden_;
};

TEST_F(FlowMatchEulerGolden, FluxDevConfigIsRead) {
  const FlowMatchEulerConfig c = read_flow_match_euler_config(kDir + "/scheduler");
  EXPECT_EQ(c.num_train_timesteps, 1000);
  EXPECT_EQ(c.shift, 3.0);
  EXPECT_TRUE(c.use_dynamic_shifting);
  EXPECT_EQ(c.base_shift, 0.5);
  EXPECT_EQ(c.max_shift, 1.15);
  EXPECT_EQ(c.base_image_seq_len, 256);
  EXPECT_EQ(c.max_image_seq_len, 4096);
  EXPECT_EQ(c.time_shift, FlowMatchEulerConfig::TimeShift::Exponential);  // absent from dev's file: the default
  EXPECT_NEAR(flux_time_shift_mu(c, 4096), 1.15, 1e-12);
  EXPECT_NEAR(flux_time_shift_mu(c, 1024), 0.63, 1e-12);
  EXPECT_NEAR(flux_time_shift_mu(c, 256), 0.5, 1e-12);
}

TEST_F(FlowMatchEulerGolden, SchedulesMatchDiffusersBitForBit) {
  struct Case {
    const char* config;
    const char* dir;
    int64_t steps, seq;
  };
  for (const Case& c : std::vector<Case>{{"dev", "scheduler", 28, 4096},
                                         {"dev", "scheduler", 4, 256},
                                         {"dev", "scheduler", 4, 1024},
                                         {"dev", "scheduler", 1, 4096},
                                         {"schnell", "scheduler_schnell", 4, 4096},
                                         {"shift3", "scheduler_shift3", 28, 4096},
                                         {"linear", "scheduler_linear", 28, 4096}}) {
    const std::string key = std::string("sched_") + c.config + "_" + std::to_string(c.steps) + "_" +
                            std::to_string(c.seq);
    SCOPED_TRACE(key);
    FlowMatchEulerScheduler s(read_flow_match_euler_config(kDir + "/" + c.dir));
    s.set_timesteps(c.steps, c.seq);
    EXPECT_EQ(s.num_steps(), c.steps);
    expect_bits(s.sigmas(), values(golden_->tensor(key + "_sigmas")), key + " sigmas");
    expect_bits(s.timesteps(), values(golden_->tensor(key + "_timesteps")), key + " timesteps");
    EXPECT_EQ(s.sigmas().back(), 0.0f);
  }
  // flux.md §2.3's check values, 28 steps at 1024².
  FlowMatchEulerScheduler dev(read_flow_match_euler_config(kDir + "/scheduler"));
  dev.set_timesteps(28, 4096);
  EXPECT_FLOAT_EQ(dev.sigmas()[1], 0.9884086f);
  EXPECT_FLOAT_EQ(dev.sigmas()[27], 0.1047209f);
  EXPECT_FLOAT_EQ(dev.timesteps()[2], 976.22247f);
}

TEST_F(FlowMatchEulerGolden, EulerStepsMatchDiffusersInF32AndBf16) {
  FlowMatchEulerScheduler s(read_flow_match_euler_config(kDir + "/scheduler"));
  s.set_timesteps(4, 256);
  const Tensor sample = golden_->tensor("euler_sample"), velocity = golden_->tensor("euler_velocity");
  const int64_t n = sample.numel();
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor want = golden_->tensor(dt == DType::F32 ? "euler_f32" : "euler_bf16");
    Tensor x = sample.to(dt);
    for (int64_t i = 0; i < 4; ++i) {
      const Tensor v = velocity.slice_rows(i, i + 1).view(sample.shape()).to(dt);
      s.step(i, x, v);
      const Tensor got = x.to(DType::F32), w = want.slice_rows(i, i + 1);
      expect_bits(values(got), std::vector<float>(w.data<float>(), w.data<float>() + n),
                  "after step " + std::to_string(i));
    }
  }
  Tensor x = sample.clone();
  try {
    s.step(4, x, sample);
    FAIL() << "a step past the schedule was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the schedule has 4 steps"), std::string::npos) << e.what();
  }
  try {
    s.step(0, x, sample.to(DType::BF16));
    FAIL() << "a BF16 velocity for an F32 sample was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must have one shape and one dtype"), std::string::npos) << e.what();
  }
}

class SchedulerConfigErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("omni_flow_match_config_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // The error reading a config of these fields.
  std::string error_for(const std::string& json) {
    std::ofstream((dir_ / "scheduler_config.json").string()) << json;
    try {
      read_flow_match_euler_config(dir_.string());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

TEST_F(SchedulerConfigErrors, UnsupportedFieldsAreNamed) {
  const std::string file = "scheduler_config.json: field ";
  EXPECT_NE(error_for(R"({"time_shift_type": "cosine"})").find(file + "\"time_shift_type\" is \"cosine\""),
            std::string::npos);
  EXPECT_NE(error_for(R"({"use_karras_sigmas": true})").find(file + "\"use_karras_sigmas\" is true"),
            std::string::npos);
  EXPECT_NE(error_for(R"({"stochastic_sampling": true})").find(file + "\"stochastic_sampling\" is true"),
            std::string::npos);
  EXPECT_NE(error_for(R"({"invert_sigmas": true})").find(file + "\"invert_sigmas\" is true"), std::string::npos);
  EXPECT_NE(error_for(R"({"shift_terminal": 0.1})").find(file + "\"shift_terminal\" is 0.1"), std::string::npos);
  EXPECT_NE(error_for(R"({"_class_name": "EulerDiscreteScheduler"})").find(file + "\"_class_name\""),
            std::string::npos);
  EXPECT_NE(error_for(R"({"shift": -1})").find(file + "\"shift\" must be positive"), std::string::npos);
  EXPECT_NE(error_for(R"({"num_train_timesteps": 0})").find(file + "\"num_train_timesteps\" must be positive"),
            std::string::npos);
  EXPECT_NE(error_for(R"({"base_image_seq_len": 4096})").find("must differ"), std::string::npos);
  EXPECT_NE(error_for(R"({"use_dynamic_shifting": "yes"})")
                .find(file + "\"use_dynamic_shifting\" must be true or false"),
            std::string::npos);
  // Defaults and the values that mean "off" are accepted.
  EXPECT_EQ(error_for(R"({"shift_terminal": null, "use_beta_sigmas": false, "time_shift_type": "linear"})"), "");
}

}  // namespace
}  // namespace omni
