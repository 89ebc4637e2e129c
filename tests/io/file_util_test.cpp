// MappedFile, small file helpers and AtomicFileWriter. The failure tests make a real write fail: with
// RLIMIT_FSIZE (EFBIG; works as root, where permission tricks do not) and, where the kernel lets us create a
// private mount namespace, a full 64 KiB tmpfs (ENOSPC).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/error_of.h"

#include "core/error.h"
#include "io/file_util.h"

namespace fs = std::filesystem;
using omni::AtomicFileWriter;

namespace {

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / ("omni_file_util_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_plain(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary);
  f << content;
}

std::string read_plain(const std::string& path) { return omni::read_text_file(path); }

// Text that is not a repetition of one byte, so a truncated or shifted copy is caught.
std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  unsigned x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

using omni::testing_support::error_of;

}  // namespace

TEST(MappedFile, MapsTheWholeFile) {
  TempDir d;
  const std::string content = pattern(10000, 1);
  write_plain(d.file("a.bin"), content);
  auto m = omni::MappedFile::open(d.file("a.bin"));
  ASSERT_EQ(m->size(), content.size());
  EXPECT_EQ(m->path(), d.file("a.bin"));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), m->size()), content);
}

TEST(MappedFile, EmptyFileOpens) {
  TempDir d;
  write_plain(d.file("empty"), "");
  auto m = omni::MappedFile::open(d.file("empty"));
  EXPECT_EQ(m->size(), 0u);
}

TEST(MappedFile, ErrorsNameThePath) {
  TempDir d;
  const std::string missing = d.file("missing.safetensors");
  std::string msg = error_of([&] { omni::MappedFile::open(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
  msg = error_of([&] { omni::MappedFile::open(d.path().string()); });
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
}

TEST(FileHelpers, ReadExistsSize) {
  TempDir d;
  const std::string content = pattern(70000, 2);  // more than one read() buffer
  write_plain(d.file("t.txt"), content);
  EXPECT_EQ(omni::read_text_file(d.file("t.txt")), content);
  EXPECT_TRUE(omni::file_exists(d.file("t.txt")));
  EXPECT_FALSE(omni::file_exists(d.file("nope")));
  EXPECT_FALSE(omni::file_exists(d.path().string()));  // a directory is not a file
  EXPECT_EQ(omni::file_size(d.file("t.txt")), content.size());
  const std::string msg = error_of([&] { omni::file_size(d.file("nope")); });
  EXPECT_NE(msg.find(d.file("nope")), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { omni::read_text_file(d.file("nope")); }).find(d.file("nope")), std::string::npos);
}

TEST(FileHelpers, ReadTextFileStopsAtItsLimit) {
  TempDir d;
  const std::string content = pattern(70000, 3);
  write_plain(d.file("t.txt"), content);
  EXPECT_EQ(omni::read_text_file(d.file("t.txt"), content.size()), content);  // exactly the limit is fine
  std::string msg = error_of([&] { omni::read_text_file(d.file("t.txt"), content.size() - 1); });
  EXPECT_NE(msg.find(d.file("t.txt")), std::string::npos) << msg;
  EXPECT_NE(msg.find("larger than"), std::string::npos) << msg;
  // A file without an end: stopped at the limit, not read forever.
  msg = error_of([&] { omni::read_text_file("/dev/zero", uint64_t{1} << 20); });
  EXPECT_NE(msg.find("/dev/zero is larger than the 1 MiB"), std::string::npos) << msg;
}

TEST(AtomicFileWriter, CommitLeavesOnlyTheTarget) {
  TempDir d;
  const std::string target = d.file("out.bin");
  const std::string a = pattern(5000, 3), b = pattern(123, 4);
  {
    AtomicFileWriter w(target);
    w.write(a.data(), a.size());
    w.write(b);
    // Before commit the target does not exist yet, only the temporary file.
    EXPECT_FALSE(fs::exists(target));
    ASSERT_EQ(d.listing().size(), 1u);
    EXPECT_EQ(d.listing()[0].rfind(".out.bin.tmp-", 0), 0u) << d.listing()[0];
    w.commit();
  }
  EXPECT_EQ(d.listing(), std::vector<std::string>{"out.bin"});
  EXPECT_EQ(read_plain(target), a + b);
}

TEST(AtomicFileWriter, ReplacesAnExistingFile) {
  TempDir d;
  const std::string target = d.file("config.json");
  write_plain(target, "old contents");
  omni::write_file_atomic(target, "new contents, longer than before");
  EXPECT_EQ(read_plain(target), "new contents, longer than before");
  EXPECT_EQ(d.listing(), std::vector<std::string>{"config.json"});
}

TEST(AtomicFileWriter, AbandonedWriteKeepsTheOldFile) {
  TempDir d;
  const std::string target = d.file("model.safetensors");
  write_plain(target, "old");
  {
    AtomicFileWriter w(target);
    w.write(pattern(4096, 5));
    // destroyed without commit(), as when an exception unwinds a save
  }
  EXPECT_EQ(read_plain(target), "old");
  EXPECT_EQ(d.listing(), std::vector<std::string>{"model.safetensors"});
}

TEST(AtomicFileWriter, MissingDirectoryNamesTheTarget) {
  TempDir d;
  const std::string target = d.file("no/such/dir/x.bin");
  const std::string msg = error_of([&] { AtomicFileWriter w(target); });
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
}

TEST(AtomicFileWriter, RenameOntoADirectoryFails) {
  TempDir d;
  fs::create_directories(d.path() / "occupied" / "child");
  const std::string target = d.file("occupied");
  const std::string msg = error_of([&] { omni::write_file_atomic(target, "data"); });
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
  EXPECT_TRUE(fs::is_directory(target));
  EXPECT_EQ(d.listing(), std::vector<std::string>{"occupied"});  // no temporary file left behind
}

// A file-size limit makes write() fail with EFBIG after the first bytes: a short write then an error, which is
// what a full disk looks like to the writer.
TEST(AtomicFileWriter, FailedWriteKeepsTheOldFileAndNamesTheTarget) {
  TempDir d;
  const std::string target = d.file("weights.bin");
  write_plain(target, "previous good version");
  struct rlimit old_limit {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct sigaction ignore {}, old_action {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);  // else the kernel kills us instead of failing write
  struct rlimit small = old_limit;
  small.rlim_cur = 1000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string msg;
  {
    AtomicFileWriter w(target);
    msg = error_of([&] { w.write(pattern(5000, 6)); });
    // A writer whose write failed refuses to commit a truncated file.
    const std::string commit_msg = error_of([&] { w.commit(); });
    EXPECT_NE(commit_msg.find(target), std::string::npos) << commit_msg;
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::sigaction(SIGXFSZ, &old_action, nullptr);
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
  EXPECT_NE(msg.find("too large"), std::string::npos) << msg;  // strerror(EFBIG)
  EXPECT_EQ(read_plain(target), "previous good version");
  EXPECT_EQ(d.listing(), std::vector<std::string>{"weights.bin"});
}

// ENOSPC from a real full file system: a 64 KiB tmpfs mounted in a private mount namespace of a child process
// (so nothing leaks into the host's mounts). Skipped where namespaces or mounts are not allowed.
TEST(AtomicFileWriter, FullDiskKeepsTheOldFile) {
  TempDir d;
  const std::string mount_point = d.file("tiny_fs");
  fs::create_directories(mount_point);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(77);
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(77);
    if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=64k") != 0) ::_exit(77);
    const std::string target = mount_point + "/model.safetensors";
    int code = 0;
    try {
      omni::write_file_atomic(target, "old checkpoint");
      const std::string msg = error_of([&] { omni::write_file_atomic(target, pattern(1 << 20, 7)); });
      if (msg.find(target) == std::string::npos) code = 1;
      if (msg.find("No space left") == std::string::npos) code = 2;
      if (read_plain(target) != "old checkpoint") code = 3;
      size_t entries = 0;
      for (const auto& e : fs::directory_iterator(mount_point)) entries += e.exists();
      if (entries != 1) code = 4;
    } catch (...) {
      code = 5;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot mount a private tmpfs here (needs CAP_SYS_ADMIN)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: message lacks path, 2: not ENOSPC, 3: old file damaged, 4: temp left";
}

TEST(AtomicFileWriter, ConcurrentWritersToOneTarget) {
  TempDir d;
  const std::string target = d.file("shared.bin");
  std::vector<std::string> contents;
  for (unsigned i = 0; i < 8; ++i) contents.push_back(pattern(20000 + i, 10 + i));
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { omni::write_file_atomic(target, contents[i]); });
  for (auto& t : threads) t.join();
  // Whichever rename came last wins, but the file is always one complete version.
  const std::string result = read_plain(target);
  EXPECT_NE(std::find(contents.begin(), contents.end(), result), contents.end());
  EXPECT_EQ(d.listing(), std::vector<std::string>{"shared.bin"});
}
