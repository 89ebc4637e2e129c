// omniround inspect DIR: what a checkpoint holds — architecture, parameters, dtypes, quantization, disk size.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/commands.h"
#include "pipelines/inspect.h"

namespace omni::cli {

std::function<int()> add_inspect_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("inspect", "print architecture, parameter counts, dtypes, quantization, size");
  sub->add_option("model_dir", *dir, "Hugging Face model directory")->required()->check(CLI::ExistingDirectory);
  return [dir] {
    std::cout << format_inspection(inspect_checkpoint(*dir));
    return 0;
  };
}

}  // namespace omni::cli
