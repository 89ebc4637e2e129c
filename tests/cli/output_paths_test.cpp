// Output paths are checked before any work, and --overwrite never deletes what omniround did not write
// (issue 7, items 3, 4 and 6): an output that is, contains or is inside the source is refused; an existing folder
// that is not one of our outputs is refused even with --overwrite; an empty -o and an unwritable --json are clear
// errors before the run; --threads is capped with a note.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/run_omniround.h"

namespace {

using omni::testing_support::run_omniround;
namespace fs = std::filesystem;

const std::string kTiny = std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3";
const fs::path kRoot = fs::path(OMNI_BINARY_DIR) / "output_paths_test.out";

class OutputPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(kRoot);
    fs::create_directories(kRoot / "parent");
    fs::copy(kTiny, model_, fs::copy_options::recursive);
    std::ofstream(notes_) << "not ours\n";
  }
  void expect_refused(const std::string& args, const std::string& fragment) {
    const auto r = run_omniround(args);
    EXPECT_NE(r.status, 0) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(fragment), std::string::npos) << args << "\n" << r.output;
    EXPECT_TRUE(fs::is_regular_file(model_ / "model.safetensors")) << "the source was touched by: " << args;
    EXPECT_TRUE(fs::is_regular_file(notes_)) << "an unrelated file was deleted by: " << args;
  }
  const fs::path model_ = kRoot / "parent" / "model";
  const fs::path notes_ = kRoot / "parent" / "notes.txt";
};

TEST_F(OutputPaths, RefusesOutputsThatWouldTouchTheSource) {
  const std::string q = "quantize " + model_.string() + " --rtn --overwrite -o ";
  expect_refused(q + (kRoot / "parent").string(), "contains the source directory");
  expect_refused(q + model_.string(), "is the source directory");
  expect_refused(q + (model_ / "sub").string(), "is inside the source directory");
  fs::create_directory_symlink(kRoot / "parent", kRoot / "link");
  expect_refused(q + (kRoot / "link").string(), "contains the source directory");  // after resolving the link
  expect_refused("quantize " + model_.string() + " --rtn -o \"\"", "empty path");
}

TEST_F(OutputPaths, OverwriteReplacesOnlyOurOutputs) {
  const fs::path foreign = kRoot / "foreign";
  fs::create_directories(foreign);
  std::ofstream(foreign / "keep.txt") << "mine\n";
  const std::string q = "quantize " + model_.string() + " --rtn -o ";
  expect_refused(q + foreign.string() + " --overwrite", "is not a checkpoint omniround wrote");
  EXPECT_TRUE(fs::is_regular_file(foreign / "keep.txt"));

  const fs::path out = kRoot / "out";
  ASSERT_EQ(run_omniround(q + out.string()).status, 0);
  expect_refused(q + out.string(), "already exists (pass --overwrite");
  const auto again = run_omniround(q + out.string() + " --overwrite");  // an earlier output: replaced
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_TRUE(fs::is_regular_file(out / "quantization_config.json"));
}

TEST_F(OutputPaths, EvalJsonIsCheckedBeforeTheRun) {
  const std::string e = "eval " + model_.string() + " --dataset " + kTiny + "/heldout.txt --ctx 64 --max-tokens 256";
  expect_refused(e + " --json " + kRoot.string(), "is a directory");
  expect_refused(e + " --json " + (kRoot / "missing" / "x.json").string(), "does not exist");
  expect_refused(e + " --json /proc/omniround-test.json", "cannot create a file");
}

TEST_F(OutputPaths, ThreadsAreCapped) {
  const auto r = run_omniround("inspect " + model_.string() + " --threads 99999999");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("--threads 99999999 capped at"), std::string::npos) << r.output;
}

}  // namespace
