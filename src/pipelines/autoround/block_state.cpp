#include "pipelines/autoround/block_state.h"

#include <filesystem>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "io/temp_siblings.h"

namespace omni {

namespace fs = std::filesystem;

namespace {

std::string clipped(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

}  // namespace

std::string fingerprint_differences(const nlohmann::json& saved, const nlohmann::json& current) {
  if (!saved.is_object() || !current.is_object()) return "saved " + clipped(saved) + ", now " + clipped(current);
  std::string out;
  auto add = [&](const std::string& key, const std::string& was, const std::string& now) {
    out += (out.empty() ? "" : "; ") + key + " was " + was + ", now " + now;
  };
  for (const auto& [key, value] : saved.items()) {
    const auto it = current.find(key);
    if (it == current.end()) add(key, clipped(value), "absent");
    else if (*it != value) add(key, clipped(value), clipped(*it));
  }
  for (const auto& [key, value] : current.items())
    if (!saved.contains(key)) add(key, "absent", clipped(value));
  return out.empty() ? "(no field differs)" : out;
}

BlockStateDir::BlockStateDir(std::string dir, nlohmann::json fingerprint)
    : dir_(std::move(dir)), fingerprint_(std::move(fingerprint)) {}

void BlockStateDir::create_fresh() {
  completed_.clear();
  replace_on_first_save_ = true;
}

void BlockStateDir::replace_earlier_state() {
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dir_, ec))) {
    // Only what we wrote is deleted: a folder of that name without our state file is someone else's.
    OMNI_CHECK(fs::is_directory(fs::symlink_status(dir_, ec)) && file_exists(dir_ + "/state.json"), dir_,
               " exists and is not the state of an interrupted quantization (no state.json); move it away");
    fs::remove_all(dir_, ec);
    OMNI_CHECK(!ec, "cannot remove the old partial state ", dir_, ": ", ec.message());
  }
  fs::create_directories(dir_, ec);
  OMNI_CHECK(!ec, "cannot create ", dir_, ": ", ec.message());
  replace_on_first_save_ = false;
}

void BlockStateDir::open_for_resume() {
  const std::string path = dir_ + "/state.json";
  OMNI_CHECK(file_exists(path), "nothing to resume: ", path, " does not exist (run without --resume)");
  clean_stale_temp_files_in(dir_, {});  // a block file or state.json being written when the run was killed
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    OMNI_FAIL(path, ": invalid JSON: ", e.what());
  }
  OMNI_CHECK(state.is_object() && state.contains("fingerprint") && state.contains("completed"), path,
             ": not a quantization state file");
  if (state["fingerprint"] != fingerprint_)
    OMNI_FAIL("cannot resume from ", dir_, ": it was made with different settings: ",
              fingerprint_differences(state["fingerprint"], fingerprint_),
              "; run with the same settings, or without --resume to start over");
  completed_.clear();
  for (const auto& [key, report] : state["completed"].items()) {
    const int64_t b = std::stoll(key);
    OMNI_CHECK(file_exists(block_path(b)), dir_, ": block ", b, " is marked done but ", block_path(b), " is missing");
    completed_[b] = report;
  }
}

bool BlockStateDir::is_completed(int64_t block) const { return completed_.count(block) != 0; }

std::string BlockStateDir::block_path(int64_t block) const {
  return dir_ + "/block_" + std::to_string(block) + ".safetensors";
}

void BlockStateDir::write_state() const {
  nlohmann::json state;
  state["fingerprint"] = fingerprint_;
  state["completed"] = nlohmann::json::object();
  for (const auto& [b, report] : completed_) state["completed"][std::to_string(b)] = report;
  write_file_atomic(dir_ + "/state.json", state.dump(1));
}

void BlockStateDir::save_block(int64_t block, const FrozenBlock& frozen) {
  if (replace_on_first_save_) replace_earlier_state();
  std::vector<NamedTensor> tensors;
  nlohmann::json layers = nlohmann::json::object();
  for (const auto& [name, w] : frozen.weights) {
    tensors.push_back({name + ".qweight", w.qweight});
    tensors.push_back({name + ".scales", w.scales});
    tensors.push_back({name + ".zeros", w.zeros});
    layers[name] = {{"bits", w.bits}, {"in", w.in_features}, {"out", w.out_features}, {"group", w.group_size}};
  }
  write_safetensors(block_path(block), tensors, {{"layers", layers.dump()}});
  completed_[block] = {{"initial_loss", frozen.tuning.initial_loss},
                       {"best_loss", frozen.tuning.best_loss},
                       {"best_iter", frozen.tuning.best_iter},
                       {"seconds", frozen.seconds}};
  write_state();  // only now is the block counted as done
}

FrozenBlock BlockStateDir::load_block(int64_t block) const {
  const std::string path = block_path(block);
  const auto file = SafetensorsFile::open(path);
  const auto meta = file->header().metadata.find("layers");
  OMNI_CHECK(meta != file->header().metadata.end(), path, ": missing the \"layers\" metadata");
  FrozenBlock f;
  const nlohmann::json layers = nlohmann::json::parse(meta->second);
  for (const auto& [name, info] : layers.items()) {
    GroupedIntWeight w;
    w.bits = info.at("bits").get<int>();
    w.in_features = info.at("in").get<int64_t>();
    w.out_features = info.at("out").get<int64_t>();
    w.group_size = info.at("group").get<int64_t>();
    // Copies: the state directory is deleted once the checkpoint is written.
    w.qweight = file->tensor(name + ".qweight").clone();
    w.scales = file->tensor(name + ".scales").clone();
    w.zeros = file->tensor(name + ".zeros").clone();
    f.weights[name] = std::move(w);
  }
  const nlohmann::json& r = completed_.at(block);
  f.tuning.initial_loss = r.at("initial_loss").get<double>();
  f.tuning.best_loss = r.at("best_loss").get<double>();
  f.tuning.best_iter = r.at("best_iter").get<int64_t>();
  f.seconds = r.at("seconds").get<double>();
  return f;
}

void BlockStateDir::remove() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

nlohmann::json run_fingerprint(const AutoRoundOptions& o, const std::string& model_dir,
                               const std::string& backend_name) {
  nlohmann::json j;
  j["method"] = quant_method_name(o.method);
  j["bits"] = o.scheme.bits;
  j["group_size"] = o.scheme.group_size;
  j["sym"] = o.scheme.sym;
  j["iters"] = o.iters;
  j["lr"] = o.effective_lr();
  j["minmax_lr"] = o.effective_minmax_lr();
  j["nsamples"] = o.nsamples;
  j["seqlen"] = o.seqlen;
  j["batch_size"] = o.batch_size;
  j["grad_accum"] = o.grad_accum;
  j["seed"] = o.seed;
  j["enable_quanted_input"] = o.enable_quanted_input;
  j["enable_minmax_tuning"] = o.enable_minmax_tuning;
  j["calibration_policy"] = o.calibration_policy;
  j["format"] = o.format == QuantizedCheckpointFormat::AutoGptq ? "auto_gptq" : "auto_round";
  j["dataset"] = o.dataset.empty() ? "" : fs::absolute(o.dataset).string();
  j["dataset_bytes"] = o.dataset.empty() || !file_exists(o.dataset) ? 0 : file_size(o.dataset);
  // Only when used, so partial states written before the option existed still resume.
  if (!o.calib_tokens.empty()) {
    j["calib_tokens"] = fs::absolute(o.calib_tokens).string();
    j["calib_tokens_bytes"] = file_exists(o.calib_tokens) ? file_size(o.calib_tokens) : 0;
  }
  j["model_dir"] = fs::absolute(model_dir).string();
  j["model_config"] = read_text_file(model_dir + "/config.json");
  j["threads"] = num_threads();
  j["backend"] = backend_name;  // another device rounds differently
  return j;
}

}  // namespace omni
