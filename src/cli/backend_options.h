// The --device / --dtype options shared by the commands that run a model.
#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"

namespace CLI {
class App;
}

namespace omni::cli {

struct BackendArgs {
  std::string device = "auto";
  std::string dtype = "auto";
};

// Registers --device (and --dtype when with_dtype) on the sub-command.
void add_backend_options(CLI::App* sub, BackendArgs* a, bool with_dtype);
// The backend the options name; `forced_dtype`, when given, replaces --dtype (AutoRound tunes in f32).
std::unique_ptr<Backend> make_backend(const BackendArgs& a, const char* forced_dtype = nullptr);

}  // namespace omni::cli
