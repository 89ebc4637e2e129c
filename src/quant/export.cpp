#include "quant/export.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/file_util.h"
#include "io/temp_siblings.h"
#include "quant/grouped_int_weight.h"
#include "quant/pack.h"

namespace omni {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

QuantizedCheckpointFormat parse_quantized_checkpoint_format(const std::string& name) {
  if (name == "auto_round" || name == "auto-round") return QuantizedCheckpointFormat::AutoRound;
  if (name == "auto_gptq" || name == "gptq") return QuantizedCheckpointFormat::AutoGptq;
  OMNI_FAIL("unknown checkpoint format \"", name, "\" (supported: auto_round, auto_gptq)");
}

namespace {

void apply_format(QuantizationConfig& cfg, QuantizedCheckpointFormat format) {
  cfg.data_type = "int";
  if (cfg.autoround_version.empty()) cfg.autoround_version = std::string("omniround-") + OMNI_VERSION;
  if (format == QuantizedCheckpointFormat::AutoRound) {
    cfg.quant_method = "auto-round";
    cfg.packing_format = "auto_round:auto_gptq";
    cfg.packing_format_given = true;
    cfg.checkpoint_format.clear();
  } else {
    cfg.quant_method = "gptq";
    cfg.provider = "omniround";
    cfg.desc_act = false;
    cfg.true_sequential = false;
    cfg.damp_percent = 0.01;
    cfg.checkpoint_format = "gptq";  // GPTQ v1: qzeros hold zero − 1
  }
}

// The tensors replacing <prefix>.weight.
void append_quantized(const QuantizedLinearOutput& q, QuantizedCheckpointFormat format, std::vector<NamedTensor>& out) {
  const GroupedIntWeight& w = q.weight;
  validate_grouped_int_weight(w, q.prefix);
  OMNI_CHECK(!w.g_idx.defined(), q.prefix, ": exporting an act-order (permuted g_idx) weight is not supported");
  const int64_t G = w.num_groups(), N = w.out_features, K = w.in_features;
  // GPTQ v1 stores zero − 1; a zero point of 0 (possible only for asymmetric groups that are all >= 0) has no
  // representation there, and loaders would read it as 2^bits.
  std::vector<uint8_t> stored(static_cast<size_t>(G * N));
  const uint8_t* z = w.zeros.data<uint8_t>();
  for (int64_t i = 0; i < G * N; ++i) {
    OMNI_CHECK(z[i] >= 1, q.prefix, ": zero point 0 (group ", i / N, ", output ", i % N,
               ") cannot be stored in the zero - 1 (GPTQ v1) convention of this format; use symmetric quantization");
    stored[static_cast<size_t>(i)] = static_cast<uint8_t>(z[i] - 1);
  }
  out.push_back({q.prefix + ".qweight", w.qweight});
  out.push_back({q.prefix + ".qzeros", pack_auto_gptq_qzeros(stored.data(), G, N, w.bits)});
  out.push_back({q.prefix + ".scales", w.scales});
  if (format == QuantizedCheckpointFormat::AutoGptq) {
    Tensor g_idx = Tensor::empty({K}, DType::I32);
    int32_t* gi = g_idx.data<int32_t>();
    for (int64_t k = 0; k < K; ++k) gi[k] = static_cast<int32_t>(k / w.group_size);
    out.push_back({q.prefix + ".g_idx", g_idx});
  }
  if (q.bias.defined()) {
    OMNI_CHECK(q.bias.ndim() == 1 && q.bias.dim(0) == N, q.prefix, ".bias: shape ", shape_str(q.bias.shape()),
               ", expected [", N, "]");
    out.push_back({q.prefix + ".bias", q.bias.dtype() == DType::F16 ? q.bias : q.bias.to(DType::F16)});
  }
}

// Files of a model directory that are weights (replaced by ours) or rewritten here.
bool is_weight_or_rewritten(const std::string& name, const std::string& stem) {
  static const std::set<std::string> rewritten = {"config.json", "quantization_config.json",
                                                  "model.safetensors.index.json", "pytorch_model.bin.index.json",
                                                  "diffusion_pytorch_model.safetensors.index.json",
                                                  "diffusion_pytorch_model.bin.index.json"};
  if (rewritten.count(name) || name == stem + ".safetensors.index.json") return true;
  for (const char* ext : {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf"}) {
    const std::string e = ext;
    if (name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) return true;
  }
  return false;
}

// Removes the temporary directory unless the export reached its final rename.
struct TempDirGuard {
  fs::path path;
  bool keep = false;
  ~TempDirGuard() {
    if (keep) return;
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

namespace {

// p with symlinks resolved as far as it exists, normalised, without a trailing separator.
fs::path resolved(const fs::path& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::absolute(p), ec);
  if (ec) r = fs::absolute(p).lexically_normal();
  if (r.filename().empty()) r = r.parent_path();
  return r;
}

// a is b or lies below it.
bool is_within(const fs::path& a, const fs::path& b) {
  auto ai = a.begin(), bi = b.begin();
  for (; bi != b.end(); ++ai, ++bi)
    if (ai == a.end() || *ai != *bi) return false;
  return true;
}

}  // namespace

void check_export_target(const std::string& out_dir, const std::string& source_dir, bool overwrite) {
  OMNI_CHECK(!out_dir.empty(), "the output directory is an empty path");
  const fs::path src = resolved(source_dir), out = resolved(out_dir);
  OMNI_CHECK(fs::is_directory(src), "source model directory ", source_dir, " does not exist");
  OMNI_CHECK(out != src, "output directory ", out_dir, " is the source directory ", source_dir);
  OMNI_CHECK(!is_within(out, src), "output directory ", out_dir, " is inside the source directory ", source_dir);
  OMNI_CHECK(!is_within(src, out), "output directory ", out_dir, " contains the source directory ", source_dir,
             " (replacing it would delete the source)");
  std::error_code ec;
  const auto st = fs::symlink_status(fs::absolute(out_dir), ec);
  if (ec || !fs::exists(st)) return;
  OMNI_CHECK(overwrite, "output directory ", out_dir, " already exists (pass --overwrite to replace it)");
  // Ours: a checkpoint (config.json with quantization_config.json) or a diffusers pipeline folder whose
  // transformer is one.
  const bool checkpoint = fs::is_regular_file(out / "config.json") && fs::is_regular_file(out / "quantization_config.json");
  const bool pipeline = fs::is_regular_file(out / "model_index.json") &&
                        fs::is_regular_file(out / "transformer" / "quantization_config.json");
  OMNI_CHECK(fs::is_directory(out) && (checkpoint || pipeline), "output directory ", out_dir,
             " exists and is not a checkpoint omniround wrote (no config.json with quantization_config.json, nor a "
             "pipeline folder with transformer/quantization_config.json): --overwrite replaces only earlier outputs; "
             "choose another path or remove it");
}

QuantizationConfig export_quantized_checkpoint(const std::string& source_dir, const std::string& out_dir,
                                               const std::vector<NamedTensor>& unchanged,
                                               const std::vector<QuantizedLinearOutput>& quantized,
                                               QuantizationConfig cfg, const ExportOptions& opts) {
  auto progress = [&](const std::string& msg) {
    if (opts.progress) opts.progress(msg);
  };
  // What a killed earlier export left beside the output goes first, so that the check sees what is really there.
  clean_stale_temp_siblings(out_dir, opts.progress);
  check_export_target(out_dir, source_dir, opts.overwrite);
  fs::path out = fs::absolute(fs::path(out_dir)).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" -> "dir"
  const fs::path src = fs::absolute(fs::path(source_dir)).lexically_normal();
  OMNI_CHECK(fs::is_regular_file(src / "config.json"), "export: ", (src / "config.json").string(), " is missing");
  std::error_code ec;

  apply_format(cfg, opts.format);

  // All tensors, checked for duplicates (a quantised layer must not also come with its dense weight).
  std::vector<NamedTensor> tensors = unchanged;
  for (const QuantizedLinearOutput& q : quantized) append_quantized(q, opts.format, tensors);
  std::sort(tensors.begin(), tensors.end(), [](const NamedTensor& a, const NamedTensor& b) { return a.name < b.name; });
  for (size_t i = 1; i < tensors.size(); ++i)
    OMNI_CHECK(tensors[i].name != tensors[i - 1].name, "export: tensor ", tensors[i].name, " is given twice");
  for (const QuantizedLinearOutput& q : quantized) {
    const std::string dense = q.prefix + ".weight";
    OMNI_CHECK(!std::binary_search(tensors.begin(), tensors.end(), NamedTensor{dense, {}},
                                   [](const NamedTensor& a, const NamedTensor& b) { return a.name < b.name; }),
               "export: ", dense, " is given although ", q.prefix, " is exported quantized");
  }

  // config.json with the quantization section, checked before anything is written.
  ojson config;
  try {
    config = ojson::parse(read_text_file((src / "config.json").string()));
  } catch (const nlohmann::json::exception& e) {
    OMNI_FAIL((src / "config.json").string(), ": invalid JSON: ", e.what());
  }
  OMNI_CHECK(config.is_object(), (src / "config.json").string(), ": expected a JSON object");
  const ojson qc = to_json(cfg);
  config["quantization_config"] = qc;

  fs::create_directories(out.parent_path(), ec);
  OMNI_CHECK(!ec, "export: cannot create ", out.parent_path().string(), ": ", ec.message());
  TempDirGuard tmp{temp_sibling(out, "tmp")};
  fs::create_directory(tmp.path, ec);
  OMNI_CHECK(!ec, "export: cannot create temporary directory ", tmp.path.string(), ": ", ec.message());

  const std::vector<std::string> files =
      write_safetensors_sharded(tmp.path.string(), tensors, opts.max_shard_bytes, {{"format", "pt"}}, opts.weights_stem);
  for (const std::string& f : files) progress("wrote " + f);
  write_file_atomic((tmp.path / "config.json").string(), config.dump(2) + "\n");
  write_file_atomic((tmp.path / "quantization_config.json").string(), qc.dump(2) + "\n");
  progress("wrote config.json and quantization_config.json");

  for (const fs::directory_entry& e : fs::directory_iterator(src)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || !e.is_regular_file() || is_weight_or_rewritten(name, opts.weights_stem)) continue;
    write_file_atomic((tmp.path / name).string(), read_text_file(e.path().string()));
    progress("copied " + name);
  }

  // Move into place: a new name, or with --overwrite an exchange with the earlier output (io/temp_siblings.h).
  replace_directory(tmp.path, out);
  tmp.keep = true;
  progress("exported " + out.string());
  return cfg;
}

}  // namespace omni
