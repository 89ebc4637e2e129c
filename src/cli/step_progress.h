// A progress line for long step loops (the denoising steps of `omniround image`): step k of n, a bar, seconds
// per step and the time left at the average rate so far. On a terminal it redraws one line; into a file or pipe
// it prints one line per step, so logs stay readable.
#pragma once

#include <cstdint>
#include <cstdio>

namespace omni::cli {

class StepProgress {
 public:
  explicit StepProgress(std::FILE* out);
  // After step `step` of `steps` (1-based), `elapsed` seconds since the loop began.
  void update(int64_t step, int64_t steps, double elapsed);
  // Ends the redrawn line (on a terminal).
  void finish();

 private:
  std::FILE* out_;
  bool tty_;
  bool open_line_ = false;
};

}  // namespace omni::cli
