// Checks for numeric options with messages that say what was expected and what was found ("--lr: expected a
// positive number, found -1"), where CLI11's range validators print the limits of double (309 digits).
#pragma once

#include <CLI/CLI.hpp>

namespace omni::cli {

CLI::Validator positive();      // a finite number > 0
CLI::Validator non_negative();  // a finite number >= 0
// A finite number in [lo, hi], or in (lo, hi] when lo_open.
CLI::Validator in_range(double lo, double hi, bool lo_open = false);

}  // namespace omni::cli
