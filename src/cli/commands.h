// The omniround sub-commands. Each registers its options on the CLI11 app and runs when selected.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace omni::cli {

// Returns the action to run when the sub-command was chosen.
std::function<int()> add_generate_command(CLI::App& app);
std::function<int()> add_inspect_command(CLI::App& app);
std::function<int()> add_quantize_command(CLI::App& app);
std::function<int()> add_eval_command(CLI::App& app);
std::function<int()> add_bench_command(CLI::App& app);
std::function<int()> add_compare_command(CLI::App& app);
std::function<int()> add_image_command(CLI::App& app);
// `bench flux`, a sub-command of `bench` (bench_flux_command.cpp).
std::function<int()> add_bench_flux_command(CLI::App* bench);

}  // namespace omni::cli
