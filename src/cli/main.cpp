// omniround: quantize transformer models to W4A16 and run them. Front end only: parses arguments, calls the
// library, reports errors as one clear line and a non-zero exit code.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "core/process_stats.h"
#include "core/thread_pool.h"

int main(int argc, char** argv) {
  CLI::App app{"omniround " OMNI_VERSION " — W4A16 AutoRound quantization and inference"};
  app.require_subcommand(1);
  app.fallthrough();  // global options such as --threads may also follow the sub-command
  int threads = 0;
  app.add_option("--threads", threads, "worker threads (default: all cores)")->check(omni::cli::non_negative());
  app.set_version_flag("--version", std::string("omniround ") + OMNI_VERSION);

  std::vector<std::pair<CLI::App*, std::function<int()>>> commands;
  auto add = [&](std::function<int()> (*adder)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    auto action = adder(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(action));
  };
  add(omni::cli::add_generate_command);
  add(omni::cli::add_inspect_command);
  add(omni::cli::add_quantize_command);
  add(omni::cli::add_eval_command);
  add(omni::cli::add_bench_command);
  add(omni::cli::add_compare_command);
  add(omni::cli::add_image_command);

  // A first word that names no command: say so and list them (CLI11 would only say that one is required).
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads") {
      ++i;  // its value
      continue;
    }
    if (arg.empty() || arg[0] == '-') continue;
    bool known = false;
    std::string names;
    for (const auto& [sub, action] : commands) {
      known = known || sub->get_name() == arg;
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::cerr << "omniround: unknown command '" << arg << "'; expected one of: " << names
                << " (omniround --help lists them)\n";
      return static_cast<int>(CLI::ExitCodes::ExtrasError);
    }
    break;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    const int used = omni::set_num_threads(threads);
    if (threads > 0 && used != threads)
      std::cerr << "omniround: --threads " << threads << " capped at " << used << " (" << omni::kMaxThreadsPerCore
                << " per core)\n";
    for (auto& [sub, action] : commands)
      if (sub->parsed()) return action();
  } catch (const std::bad_alloc&) {
    // Allocations we size ourselves say what was too big (Tensor::empty, the caching allocators); this is any
    // other one, so report what is known: how much the process held at its peak.
    std::cerr << "omniround: error: out of memory: an allocation failed after the process had used "
              << omni::peak_rss_bytes() / (1024 * 1024) << " MiB at its peak\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "omniround: error: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
