// AutoRound of a pipeline folder's transformer is resumable like the text quantizer: a run killed with SIGKILL
// after block 2 of 4 (100 iterations a block keep the rest from finishing first) leaves OUT.partial and no
// output; the same command with --resume reuses the finished blocks (recapturing the calibration, which is
// deterministic) and writes a transformer byte-identical to an uninterrupted run's. A resume with other calibration settings is refused, naming the difference.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/file_util.h"
#include "support/flux_t2i_folder.h"
#include "support/sanitizer_report.h"

namespace {

namespace fs = std::filesystem;

const std::string kBin = std::string(OMNI_BINARY_DIR) + "/omniround";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/quantize_pipeline_resume_test.tmp";

std::vector<std::string> quantize_args(const std::string& out, const std::string& steps = "3") {
  return {kBin, "quantize", kTmp + "/in", "-o", out, "--dataset", kTmp + "/captions.txt", "--iters", "100",
          "--group-size", "32", "--threads", "2", "--calib-size", "64x64", "--calib-steps", steps,
          "--max-sequence-length", "24"};
}

struct ProcessResult {
  int status = -1;
  bool killed = false;
  std::string log;
};

// Runs the command; when `kill_after` appears in its output, sends SIGKILL.
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

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

TEST(QuantizePipelineResume, KilledRunResumesToIdenticalBytes) {
  fs::remove_all(kTmp);
  omni::testing_support::assemble_flux_t2i_folder(kTmp + "/in");
  std::ofstream(kTmp + "/captions.txt") << "a red bicycle on a brick wall\ntwo cats asleep on a sofa\n"
                                           "a bowl of oranges on a table\na lighthouse over a calm sea\n";
  const std::string full = kTmp + "/full", resumed = kTmp + "/resumed";
  const ProcessResult a = run(quantize_args(full));
  ASSERT_EQ(a.status, 0) << a.log;

  const ProcessResult b = run(quantize_args(resumed), "block 2/4 (transformer_blocks.1) done");
  ASSERT_TRUE(b.killed) << b.log;
  EXPECT_EQ(b.status, -SIGKILL);
  EXPECT_FALSE(fs::exists(resumed)) << "a killed run must not leave an output that looks complete";
  ASSERT_TRUE(fs::exists(resumed + ".partial/state.json"));

  std::vector<std::string> other = quantize_args(resumed, "2");
  other.push_back("--resume");
  const ProcessResult t = run(other);
  EXPECT_EQ(t.status, 1) << t.log;
  EXPECT_NE(t.log.find("calib_steps was 3, now 2"), std::string::npos) << t.log;
  ASSERT_TRUE(fs::exists(resumed + ".partial/state.json"));

  std::vector<std::string> args = quantize_args(resumed);
  args.push_back("--resume");
  const ProcessResult c = run(args);
  ASSERT_EQ(c.status, 0) << c.log;
  EXPECT_NE(c.log.find("(transformer_blocks.0) done"), std::string::npos) << c.log;
  EXPECT_NE(c.log.find("(resumed)"), std::string::npos) << c.log;
  EXPECT_FALSE(fs::exists(resumed + ".partial"));
  const std::string w = "/transformer/diffusion_pytorch_model.safetensors";
  const std::string want = slurp(full + w);
  EXPECT_FALSE(want.empty());
  EXPECT_TRUE(want == slurp(resumed + w)) << "the resumed transformer differs from the uninterrupted run's";
  EXPECT_EQ(omni::read_text_file(full + "/transformer/config.json"),
            omni::read_text_file(resumed + "/transformer/config.json"));
}

}  // namespace
