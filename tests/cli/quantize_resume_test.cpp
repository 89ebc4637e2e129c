// A quantization killed with SIGKILL after block k and restarted with --resume continues from block k+1 without
// recomputing blocks 1..k, and writes byte-identical files to an uninterrupted run (same options and thread
// count); a resume with other options or another thread count is refused.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/sanitizer_report.h"

namespace {

namespace fs = std::filesystem;

const std::string kBin = std::string(OMNI_BINARY_DIR) + "/omniround";
const std::string kModel = std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3";

std::vector<std::string> quantize_args(const std::string& out) {
  return {kBin, "quantize", kModel, "-o", out, "--iters", "6", "--nsamples", "4", "--seqlen", "32",
          "--batch-size", "2", "--threads", "2", "--dataset", kModel + "/calibration.txt"};
}

struct ProcessResult {
  int status = -1;
  bool killed = false;
  std::string log;
};

// Runs the command; when `kill_after` appears in its stderr, sends SIGKILL.
ProcessResult run(std::vector<std::string> args, const std::string& kill_after = "") {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  ProcessResult r;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) {
    r.log.append(buf, static_cast<size_t>(n));
    if (!kill_after.empty() && !r.killed && r.log.find(kill_after) != std::string::npos) {
      kill(pid, SIGKILL);
      r.killed = true;
    }
  }
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  omni::testing_support::expect_no_sanitizer_report(args[1] + " " + args[2], r.log);
  return r;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

TEST(QuantizeResume, KilledRunResumesToIdenticalBytes) {
  const std::string base = std::string(OMNI_BINARY_DIR) + "/resume_test";
  fs::remove_all(base);
  fs::create_directories(base);
  const std::string full = base + "/full", resumed = base + "/resumed";

  const ProcessResult a = run(quantize_args(full));
  ASSERT_EQ(a.status, 0) << a.log;

  const ProcessResult b = run(quantize_args(resumed), "block 3/8 done");
  ASSERT_TRUE(b.killed) << b.log;
  EXPECT_EQ(b.status, -SIGKILL);
  EXPECT_FALSE(fs::exists(resumed)) << "a killed run must not leave an output that looks complete";
  ASSERT_TRUE(fs::exists(resumed + ".partial/state.json"));

  // Another thread count would change the bytes (reduction order): refused, and the partial state is kept.
  std::vector<std::string> other_threads = quantize_args(resumed);
  other_threads[14] = "1";  // --threads
  other_threads.push_back("--resume");
  const ProcessResult t = run(other_threads);
  EXPECT_EQ(t.status, 1) << t.log;
  EXPECT_NE(t.log.find("threads was 2, now 1"), std::string::npos) << t.log;
  ASSERT_TRUE(fs::exists(resumed + ".partial/state.json"));

  std::vector<std::string> args = quantize_args(resumed);
  args.push_back("--resume");
  const ProcessResult c = run(args);
  ASSERT_EQ(c.status, 0) << c.log;
  // The kill lands after block 3 reported done; the process may have finished a block more before it died.
  const size_t at = c.log.find(" of 8 blocks done");
  ASSERT_NE(at, std::string::npos) << c.log;
  const int done = std::stoi(c.log.substr(c.log.rfind(' ', at - 1) + 1));
  EXPECT_GE(done, 3) << c.log;
  EXPECT_LT(done, 8) << c.log;
  // Blocks 1..done are restored, not tuned again; the rest are tuned now.
  for (int blk = 1; blk <= 8; ++blk) {
    const std::string tag = "block " + std::to_string(blk) + "/8 done: ";
    const size_t line = c.log.find(tag);
    ASSERT_NE(line, std::string::npos) << tag << "\n" << c.log;
    const std::string text = c.log.substr(line, c.log.find('\n', line) - line);
    EXPECT_EQ(text.find("(resumed)") != std::string::npos, blk <= done) << text;
  }
  EXPECT_FALSE(fs::exists(resumed + ".partial"));

  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(full)) files.push_back(e.path().filename());
  ASSERT_FALSE(files.empty());
  for (const auto& name : files) {
    ASSERT_TRUE(fs::exists(fs::path(resumed) / name)) << name;
    EXPECT_TRUE(slurp(fs::path(full) / name) == slurp(fs::path(resumed) / name)) << name << " differs";
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(resumed), fs::directory_iterator{}),
            static_cast<std::ptrdiff_t>(files.size()));

  // Resuming with other options is refused with a clear message.
  const ProcessResult d = run(quantize_args(base + "/other"), "block 1/8 done");
  ASSERT_TRUE(d.killed) << d.log;
  std::vector<std::string> changed = quantize_args(base + "/other");
  changed[6] = "7";  // --iters
  changed.push_back("--resume");
  const ProcessResult e = run(changed);
  EXPECT_EQ(e.status, 1);
  // It names the field that differs (issue 7, finding 9), not two whole fingerprints.
  EXPECT_NE(e.log.find("different settings: iters was 6, now 7"), std::string::npos) << e.log;
  EXPECT_LT(e.log.size(), 2000u) << e.log;
}

// The token windows file (--calib-tokens) is part of the fingerprint: a resume with another file, or with a text
// dataset instead, is refused by name; the same file resumes.
TEST(QuantizeResume, CalibTokensFileIsInTheFingerprint) {
  const std::string base = std::string(OMNI_BINARY_DIR) + "/resume_tokens_test";
  fs::remove_all(base);
  fs::create_directories(base);
  const std::string tokens = base + "/windows.jsonl", out = base + "/out";
  const auto write_windows = [&](int len) {
    std::ofstream f(tokens);
    for (int i = 0; i < 4; ++i) {
      f << "{\"input_ids\": [";
      for (int k = 0; k < len; ++k) f << (k ? ", " : "") << (i * 131 + k * 7) % 8000;
      f << "]}\n";
    }
  };
  write_windows(32);
  std::vector<std::string> args = quantize_args(out);
  args.resize(args.size() - 2);  // drop --dataset FILE
  args.insert(args.end(), {"--calib-tokens", tokens});
  const ProcessResult a = run(args, "block 1/8 done");
  ASSERT_TRUE(a.killed) << a.log;
  ASSERT_TRUE(fs::exists(out + ".partial/state.json"));

  std::vector<std::string> with_text = quantize_args(out);
  with_text.push_back("--resume");
  const ProcessResult t = run(with_text);
  EXPECT_EQ(t.status, 1) << t.log;
  EXPECT_NE(t.log.find("calib_tokens was"), std::string::npos) << t.log;

  write_windows(33);  // another file at the same path (its size differs; its length is never reached)
  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  const ProcessResult c = run(resume);
  EXPECT_EQ(c.status, 1) << c.log;
  EXPECT_NE(c.log.find("calib_tokens_bytes was"), std::string::npos) << c.log;

  write_windows(32);
  const ProcessResult d = run(resume);
  ASSERT_EQ(d.status, 0) << d.log;
  EXPECT_NE(d.log.find(" of 8 blocks done"), std::string::npos) << d.log;
  EXPECT_TRUE(fs::exists(out + "/config.json"));
}

}  // namespace
