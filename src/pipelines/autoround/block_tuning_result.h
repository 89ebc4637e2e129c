// What tuning one block gave (AUTOROUND.md §1 step 5): reported by the tuner, kept in the resume state and
// printed by the CLI. One struct, so the three agree.
#pragma once

#include <cstdint>

namespace omni {

struct BlockTuningResult {
  double initial_loss = 0;  // loss of the first mini-batch at V = 0, alpha = beta = 1
  double best_loss = 0;     // lowest mini-batch loss seen (the snapshot that was frozen)
  int64_t best_iter = 0;
};

}  // namespace omni
