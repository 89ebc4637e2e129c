#include "cli/step_progress.h"

#include <unistd.h>

#include <string>

namespace omni::cli {

StepProgress::StepProgress(std::FILE* out) : out_(out), tty_(isatty(fileno(out)) != 0) {}

void StepProgress::update(int64_t step, int64_t steps, double elapsed) {
  constexpr int kWidth = 30;
  const int filled = steps > 0 ? static_cast<int>(kWidth * step / steps) : kWidth;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  const double per_step = step > 0 ? elapsed / static_cast<double>(step) : 0.0;
  const double left = per_step * static_cast<double>(steps - step);
  std::fprintf(out_, "%sstep %lld/%lld [%s] %.2f s/step, %.1f s elapsed, ETA %.1f s%s", tty_ ? "\r" : "",
               static_cast<long long>(step), static_cast<long long>(steps), bar.c_str(), per_step, elapsed, left,
               tty_ ? "" : "\n");
  std::fflush(out_);
  open_line_ = tty_;
}

void StepProgress::finish() {
  if (open_line_) std::fputc('\n', out_);
  open_line_ = false;
  std::fflush(out_);
}

}  // namespace omni::cli
