// The on-disk progress of a quantization run, OUT_DIR.partial/: one safetensors file per finished block (its
// frozen integer weights) and state.json (which blocks are done, their reports, and a fingerprint of everything
// that determines the result). Every file is written atomically, so a run killed at any moment leaves a state
// that --resume can continue from.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/linear_weight.h"
#include "pipelines/autoround/autoround_options.h"
#include "pipelines/autoround/block_tuning_result.h"

namespace omni {

struct FrozenBlock {
  std::map<std::string, GroupedIntWeight> weights;  // full Linear name (no ".weight") → frozen weight
  BlockTuningResult tuning;  // zeros for a method without tuning
  double seconds = 0;
};

// The fields of two run fingerprints that differ, "iters was 200, now 100; seed was 42, now 7" (values clipped):
// what a refused --resume reports.
std::string fingerprint_differences(const nlohmann::json& saved, const nlohmann::json& current);

class BlockStateDir {
 public:
  // fingerprint: everything the result depends on; a resume with a different one is refused.
  BlockStateDir(std::string dir, nlohmann::json fingerprint);

  const std::string& dir() const { return dir_; }
  // A new run. Nothing is written yet: an earlier partial state stays until this run finishes its first block
  // (so a run that fails before that loses nothing a --resume of the earlier run could use), and is replaced then.
  void create_fresh();
  void open_for_resume();  // errors if absent or made with other options; cleans a killed run's temporary files
  bool is_completed(int64_t block) const;
  int64_t completed_blocks() const { return static_cast<int64_t>(completed_.size()); }

  void save_block(int64_t block, const FrozenBlock& frozen);
  FrozenBlock load_block(int64_t block) const;
  void remove();

 private:
  std::string block_path(int64_t block) const;
  void write_state() const;
  void replace_earlier_state();

  std::string dir_;
  nlohmann::json fingerprint_;
  std::map<int64_t, nlohmann::json> completed_;  // block → report
  bool replace_on_first_save_ = false;          // create_fresh() was called and no block is saved yet
};

// The fingerprint of a run: options that change the output (by name), the model's config.json, the dataset's
// (or the token windows file's) path and size, the backend and the thread count (reductions are split per
// thread, so bit-identical results need the same count).
nlohmann::json run_fingerprint(const AutoRoundOptions& options, const std::string& model_dir,
                               const std::string& backend_name);

}  // namespace omni
