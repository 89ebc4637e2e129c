// What an interrupted or failed quantize leaves, and what the next run does with it (issue 7, finding 7):
// OUT.partial/ stays only when it holds finished blocks a --resume can reuse, and the run says so; temporary
// folders of a killed run are removed by the next one (by name and dead owner pid), never those of a run in
// progress; an output a killed run was replacing is put back; --overwrite leaves nothing beside the output.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/dead_pid.h"
#include "support/run_omniround.h"

namespace {

using omni::testing_support::CommandResult;
using omni::testing_support::run_omniround;
namespace fs = std::filesystem;
using omni::testing_support::dead_pid;

const std::string kTiny = std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3";
const fs::path kRoot = fs::path(OMNI_BINARY_DIR) / "interrupted_outputs_test.out";
// Small AutoRound settings: all 8 blocks in a few seconds.
const std::string kTune = " --iters 4 --nsamples 4 --seqlen 32 --batch-size 2 --threads 2";

std::vector<std::string> hidden_siblings(const fs::path& out) {
  std::vector<std::string> names;
  std::string prefix = ".";  // appended, not `"." + string`: gcc 12 flags that with a false -Wrestrict
  prefix.append(out.filename().string()).append(".");
  for (const auto& e : fs::directory_iterator(out.parent_path())) {
    const std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0) names.push_back(n);
  }
  return names;
}

bool has(const CommandResult& r, const std::string& part) { return r.output.find(part) != std::string::npos; }

class InterruptedOutputs : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(kRoot);
    fs::create_directories(kRoot);
    fs::copy(kTiny, model_, fs::copy_options::recursive);
  }
  const fs::path model_ = kRoot / "model";
  const fs::path out_ = kRoot / "out";
};

TEST_F(InterruptedOutputs, AFailureBeforeAnyBlockLeavesNoPartialState) {
  std::ofstream(kRoot / "empty.txt") << "";
  const CommandResult r =
      run_omniround("quantize " + model_.string() + " -o " + out_.string() + kTune + " --dataset " +
                    (kRoot / "empty.txt").string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "empty.txt")) << r.output;
  EXPECT_FALSE(fs::exists(out_.string() + ".partial")) << r.output;
  EXPECT_FALSE(fs::exists(out_));
  EXPECT_TRUE(hidden_siblings(out_).empty());
}

TEST_F(InterruptedOutputs, AFailureAfterFinishedBlocksKeepsThemForResume) {
  // A side file of the model that export cannot copy (past the 1 GiB text limit; sparse, so it costs no disk):
  // the run fails after every block is tuned, when it writes the checkpoint.
  const fs::path big = model_ / "notes.txt";
  { std::ofstream(big) << "x"; }
  fs::resize_file(big, (uint64_t{1} << 30) + 1);
  const std::string cmd = "quantize " + model_.string() + " -o " + out_.string() + kTune;
  const CommandResult r = run_omniround(cmd);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "notes.txt")) << r.output;
  EXPECT_TRUE(has(r, "kept " + out_.string() + ".partial (8 of 8 blocks done)")) << r.output;
  EXPECT_TRUE(has(r, "--resume")) << r.output;
  EXPECT_TRUE(fs::is_regular_file(out_.string() + ".partial/state.json"));
  EXPECT_FALSE(fs::exists(out_));
  EXPECT_TRUE(hidden_siblings(out_).empty()) << "the export's temporary folder was left behind";

  // A failing fresh run must not destroy that state before it has finished a block of its own.
  std::ofstream(kRoot / "empty.txt") << "";
  EXPECT_EQ(run_omniround(cmd + " --dataset " + (kRoot / "empty.txt").string()).status, 1);
  EXPECT_TRUE(fs::is_regular_file(out_.string() + ".partial/state.json"));

  // Once the cause is gone, --resume reuses every block and the state is removed.
  fs::remove(big);
  const CommandResult resumed = run_omniround(cmd + " --resume");
  EXPECT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_TRUE(has(resumed, "8 of 8 blocks done")) << resumed.output;
  EXPECT_FALSE(fs::exists(out_.string() + ".partial"));
  EXPECT_TRUE(fs::is_regular_file(out_ / "quantization_config.json"));
}

TEST_F(InterruptedOutputs, LeftoversOfKilledRunsAreCleanedAndThoseOfLiveRunsKept) {
  const long dead = dead_pid();
  const fs::path stale = kRoot / (".out.tmp-" + std::to_string(dead) + "-3");
  const fs::path live = kRoot / (".out.tmp-" + std::to_string(::getpid()) + "-4");  // this test is running
  const fs::path other = kRoot / (".notes.tmp-" + std::to_string(dead) + "-0");    // another target's
  for (const fs::path& p : {stale, live, other}) {
    fs::create_directories(p);
    std::ofstream(p / "model.safetensors") << "half written";
  }
  const CommandResult r = run_omniround("quantize " + model_.string() + " --rtn -o " + out_.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r, "removed " + stale.string())) << r.output;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live)) << "a running process's temporary folder was deleted";
  EXPECT_TRUE(fs::exists(other)) << "a leftover of another output was deleted";
  EXPECT_TRUE(fs::is_regular_file(out_ / "quantization_config.json"));
}

TEST_F(InterruptedOutputs, AnOutputKilledMidReplacementIsPutBack) {
  const std::string rtn = "quantize " + model_.string() + " --rtn -o " + out_.string();
  ASSERT_EQ(run_omniround(rtn).status, 0);
  std::ofstream(out_ / "marker.txt") << "the earlier output\n";
  // The state a run killed between its two renames leaves (where no atomic exchange exists): the earlier
  // output moved aside, the new one complete under its temporary name, nothing under OUT.
  const long dead = dead_pid();
  const fs::path old = kRoot / (".out.old-" + std::to_string(dead) + "-0");
  const fs::path fresh = kRoot / (".out.tmp-" + std::to_string(dead) + "-1");
  fs::rename(out_, old);
  fs::copy(old, fresh, fs::copy_options::recursive);
  fs::remove(fresh / "marker.txt");

  const CommandResult r = run_omniround(rtn);  // no --overwrite: the restored output must not be replaced
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r, "restored " + out_.string())) << r.output;
  EXPECT_TRUE(has(r, "already exists (pass --overwrite")) << r.output;
  EXPECT_TRUE(fs::is_regular_file(out_ / "marker.txt")) << "the earlier output was not put back";
  EXPECT_TRUE(hidden_siblings(out_).empty());
}

TEST_F(InterruptedOutputs, OverwriteReplacesInOneStepAndLeavesNothingBeside) {
  const std::string rtn = "quantize " + model_.string() + " --rtn -o " + out_.string();
  ASSERT_EQ(run_omniround(rtn).status, 0);
  std::ofstream(out_ / "marker.txt") << "the earlier output\n";
  const CommandResult r = run_omniround(rtn + " --overwrite");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(fs::exists(out_ / "marker.txt")) << "the earlier output is still there";
  EXPECT_TRUE(fs::is_regular_file(out_ / "quantization_config.json"));
  EXPECT_TRUE(hidden_siblings(out_).empty());
}

}  // namespace
