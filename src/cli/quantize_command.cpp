// omniround quantize MODEL_DIR -o OUT_DIR: write a W4A16 (generally Wb A16) checkpoint in the auto_round or
// auto_gptq format.
#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "io/file_util.h"
#include "quant/rtn_checkpoint.h"
#include "quant/quant_summary.h"

namespace omni::cli {
namespace {

struct QuantizeArgs {
  std::string model_dir, out_dir;
  std::string scheme = "W4A16";
  int bits = 4;
  int64_t group_size = 128;
  bool asym = false;
  bool rtn = false;
  bool overwrite = false;
  std::string format = "auto_round";
};

uint64_t directory_bytes(const std::string& dir);

int run_quantize(const QuantizeArgs& a) {
  OMNI_CHECK(a.scheme == "W4A16" || a.bits != 4, "--scheme ", a.scheme, " is not supported (W4A16; set --bits for others)");
  OMNI_CHECK(a.rtn, "AutoRound tuning is not available in this build yet; pass --rtn for round-to-nearest");
  RtnOptions opt;
  opt.scheme.bits = a.bits;
  opt.scheme.group_size = a.group_size;
  opt.scheme.sym = !a.asym;
  opt.format = parse_quantized_checkpoint_format(a.format);
  opt.overwrite = a.overwrite;
  opt.progress = [](const std::string& line) { std::cerr << line << "\n"; };

  const auto t0 = std::chrono::steady_clock::now();
  const RtnSummary s = quantize_rtn_checkpoint(a.model_dir, a.out_dir, opt);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const uint64_t before = directory_bytes(a.model_dir), after = directory_bytes(a.out_dir);
  std::printf("quantized %zu linear layers (%zu left 16-bit) with RTN: %s\n", s.quantized.size(), s.skipped.size(),
              describe_quantization(s.config).c_str());
  std::printf("size: %.2f MiB -> %.2f MiB (%.2fx smaller), %.2f s\nwrote %s\n", before / 1048576.0, after / 1048576.0,
              after ? static_cast<double>(before) / static_cast<double>(after) : 0.0, secs, a.out_dir.c_str());
  return 0;
}

uint64_t directory_bytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

}  // namespace

std::function<int()> add_quantize_command(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* sub = app.add_subcommand("quantize", "quantize a 16-bit checkpoint to W4A16 (auto_round format)");
  sub->add_option("model_dir", a->model_dir, "Hugging Face model directory (BF16/F16/F32)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("-o,--output", a->out_dir, "output directory (must not exist unless --overwrite)")->required();
  sub->add_option("--scheme", a->scheme, "quantization scheme (W4A16)");
  sub->add_option("--bits", a->bits, "weight bits: 2, 4 or 8 (default 4)")->check(CLI::IsMember({2, 3, 4, 8}));
  sub->add_option("--group-size", a->group_size, "inputs per scale group: 32, 64, 128 (default) or -1 per channel")
      ->check(CLI::IsMember({-1, 32, 64, 128, 256}));
  sub->add_flag("--asym", a->asym, "asymmetric (zero point) instead of full-range symmetric; auto_gptq format only");
  sub->add_flag("--rtn", a->rtn, "round-to-nearest: no calibration, streams tensor by tensor");
  sub->add_option("--format", a->format, "auto_round (default) or auto_gptq")->check(CLI::IsMember({"auto_round", "auto_gptq"}));
  sub->add_flag("--overwrite", a->overwrite, "replace an existing output directory");
  return [a] { return run_quantize(*a); };
}

}  // namespace omni::cli
