// Temporary sibling names, the stale-leftover cleaner and the directory replacement (io/temp_siblings.h).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "io/temp_siblings.h"
#include "support/dead_pid.h"

namespace {

namespace fs = std::filesystem;
using omni::testing_support::dead_pid;
using omni::TempSiblingName;

const fs::path kRoot = fs::path(OMNI_BINARY_DIR) / "temp_siblings_test.out";


std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TempSiblings : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(kRoot);
    fs::create_directories(kRoot);
  }
};

TEST_F(TempSiblings, NamesRoundTripAndOthersAreNotMistakenForThem) {
  const fs::path made = omni::temp_sibling(kRoot / "my-model.v2", "tmp");
  EXPECT_EQ(made.parent_path(), kRoot);
  TempSiblingName n;
  ASSERT_TRUE(omni::parse_temp_sibling(made.filename().string(), &n)) << made;
  EXPECT_EQ(n.target, "my-model.v2");
  EXPECT_EQ(n.tag, "tmp");
  EXPECT_EQ(n.pid, static_cast<long>(::getpid()));
  EXPECT_NE(omni::temp_sibling(kRoot / "a", "tmp"), omni::temp_sibling(kRoot / "a", "tmp"));  // never reused
  EXPECT_EQ(omni::temp_sibling(kRoot / "dir/", "old").filename().string().rfind(".dir.old-", 0), 0u);
  for (const char* other : {"out", ".out", ".out.tmp", ".out.tmp-12", ".out.tmp-x-1", ".out.new-12-1", "out.tmp-12-1",
                            ".out.tmp-12-1x", ".out.tmp--1", ".out.tmp-0-1", ".out.tmp-12345678901-1"})
    EXPECT_FALSE(omni::parse_temp_sibling(other, &n)) << other;
  ASSERT_TRUE(omni::parse_temp_sibling(".out.old-77-5", &n));
  EXPECT_EQ(n.target, "out");
  EXPECT_EQ(n.tag, "old");
  EXPECT_EQ(n.pid, 77);
}

TEST_F(TempSiblings, ProcessExistence) {
  EXPECT_TRUE(omni::process_exists(::getpid()));
  EXPECT_TRUE(omni::process_exists(1));  // init: another user's process counts as existing
  EXPECT_FALSE(omni::process_exists(dead_pid()));
  EXPECT_FALSE(omni::process_exists(0));
}

TEST_F(TempSiblings, ReplaceDirectorySwapsContentsAndLeavesNothingBeside) {
  const fs::path target = kRoot / "out", fresh = omni::temp_sibling(target, "tmp");
  fs::create_directories(target);
  std::ofstream(target / "a.txt") << "old";
  fs::create_directories(fresh);
  std::ofstream(fresh / "b.txt") << "new";
  omni::replace_directory(fresh, target);
  EXPECT_EQ(read(target / "b.txt"), "new");
  EXPECT_FALSE(fs::exists(target / "a.txt"));
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_EQ(std::distance(fs::directory_iterator(kRoot), fs::directory_iterator()), 1);

  // Into a name that does not exist yet: a plain rename.
  const fs::path fresh2 = omni::temp_sibling(kRoot / "second", "tmp");
  fs::create_directories(fresh2);
  omni::replace_directory(fresh2, kRoot / "second");
  EXPECT_TRUE(fs::is_directory(kRoot / "second"));
  EXPECT_FALSE(fs::exists(fresh2));
}

TEST_F(TempSiblings, CleanerRestoresAHalfReplacedOutputAndRemovesDeadLeftovers) {
  const long dead = dead_pid();
  const fs::path target = kRoot / "out";
  const fs::path old = kRoot / (".out.old-" + std::to_string(dead) + "-0");
  const fs::path tmp = kRoot / (".out.tmp-" + std::to_string(dead) + "-1");
  fs::create_directories(old);
  std::ofstream(old / "a.txt") << "old";
  fs::create_directories(tmp);
  std::string said;
  omni::clean_stale_temp_siblings(target, [&](const std::string& s) { said += s + "\n"; });
  EXPECT_EQ(read(target / "a.txt"), "old") << said;
  EXPECT_FALSE(fs::exists(old));
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_NE(said.find("restored " + target.string()), std::string::npos) << said;

  // With the target present, a dead "old" copy is only a leftover.
  fs::create_directories(old);
  omni::clean_stale_temp_siblings(target, {});
  EXPECT_FALSE(fs::exists(old));
  EXPECT_EQ(read(target / "a.txt"), "old");
}

TEST_F(TempSiblings, FilesInADirectory) {
  const long dead = dead_pid();
  const fs::path stale = kRoot / (".state.json.tmp-" + std::to_string(dead) + "-2");
  const fs::path live = kRoot / (".block_1.safetensors.tmp-" + std::to_string(::getpid()) + "-3");
  const fs::path old = kRoot / (".x.old-" + std::to_string(dead) + "-2");  // not a file write's temporary
  for (const fs::path& p : {stale, live, old}) std::ofstream(p) << "x";
  omni::clean_stale_temp_files_in(kRoot, {});
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(old));
}

}  // namespace
