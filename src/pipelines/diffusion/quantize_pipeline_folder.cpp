#include "pipelines/diffusion/quantize_pipeline_folder.h"

#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/json_fields.h"
#include "io/temp_siblings.h"
#include "models/flux/flux_config.h"
#include "nn/flux_blocks.h"
#include "quant/export.h"

namespace omni {
namespace fs = std::filesystem;
namespace {

constexpr const char* kTransformer = "transformer";

// model_index.json's entry for the transformer: ["diffusers", "FluxTransformer2DModel"].
void check_model_index(const std::string& in_dir) {
  const std::string file = (fs::path(in_dir) / "model_index.json").string();
  const nlohmann::json j = read_json_file(file);
  OMNI_CHECK(j.is_object(), file, ": expected a JSON object");
  OMNI_CHECK(j.contains(kTransformer), file, ": no \"transformer\" component (only pipelines with a transformer, ",
             "e.g. FluxPipeline, can be quantized)");
  const nlohmann::json& t = j.at(kTransformer);
  OMNI_CHECK(t.is_array() && t.size() == 2 && t[1].is_string(), file,
             ": field \"transformer\" must be [library, class], found ", t.dump());
  OMNI_CHECK(t[1].get<std::string>() == "FluxTransformer2DModel", file, ": field \"transformer\" is ", t.dump(),
             "; only FluxTransformer2DModel is supported");
  OMNI_CHECK(fs::is_directory(fs::path(in_dir) / kTransformer), in_dir, ": model_index.json lists a transformer ",
             "but there is no transformer/ folder");
}

}  // namespace

bool is_pipeline_folder(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / "model_index.json", ec);
}

void check_flux_pipeline_folder(const std::string& in_dir) { check_model_index(in_dir); }

std::vector<std::string> write_quantized_pipeline_folder(const std::string& in_dir, const std::string& out_dir,
                                                         const std::function<void(const std::string&)>& write_transformer,
                                                         const std::function<void(const std::string&)>& progress) {
  fs::path out = fs::absolute(fs::path(out_dir)).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  std::error_code ec;
  fs::create_directories(out.parent_path(), ec);
  OMNI_CHECK(!ec, "cannot create ", out.parent_path().string(), ": ", ec.message());
  const fs::path tmp = temp_sibling(out, "tmp");
  struct Guard {
    fs::path p;
    bool keep = false;
    ~Guard() {
      if (keep) return;
      std::error_code e;
      fs::remove_all(p, e);
    }
  } guard{tmp};
  fs::create_directory(tmp, ec);
  OMNI_CHECK(!ec, "cannot create temporary folder ", tmp.string(), ": ", ec.message());

  write_transformer((tmp / kTransformer).string());
  std::vector<std::string> copied;
  for (const fs::directory_entry& e : fs::directory_iterator(in_dir)) {
    const std::string name = e.path().filename().string();
    if (name == kTransformer || name.empty() || name[0] == '.') continue;
    fs::copy(e.path(), tmp / name, fs::copy_options::recursive, ec);
    OMNI_CHECK(!ec, "cannot copy ", e.path().string(), " into ", tmp.string(), ": ", ec.message());
    copied.push_back(name);
    if (progress) progress("copied " + name);
  }
  replace_directory(tmp, out);  // a new name, or an exchange with the earlier output (--overwrite)
  guard.keep = true;
  if (progress) progress("exported " + out.string());
  return copied;
}

PipelineQuantizeSummary quantize_pipeline_folder_rtn(const std::string& in_dir, const std::string& out_dir,
                                                     RtnOptions opts) {
  check_model_index(in_dir);
  const std::string transformer_in = (fs::path(in_dir) / kTransformer).string();
  const FluxSpec spec = read_flux_transformer_config(transformer_in);
  clean_stale_temp_siblings(out_dir, opts.progress);
  check_export_target(out_dir, in_dir, opts.overwrite);

  opts.block_names = {"transformer_blocks", "single_transformer_blocks"};
  std::set<std::string> names;
  const FluxDoubleBlock double_block(spec);
  const FluxSingleBlock single_block(spec);
  for (const Block* b : {static_cast<const Block*>(&double_block), static_cast<const Block*>(&single_block)})
    for (const LinearDesc& d : b->linears()) names.insert(d.name);
  opts.linear_names.assign(names.begin(), names.end());
  opts.weights_stem = "diffusion_pytorch_model";
  opts.overwrite = false;  // checked above; the transformer goes into a fresh temporary folder

  PipelineQuantizeSummary summary;
  summary.copied = write_quantized_pipeline_folder(
      in_dir, out_dir,
      [&](const std::string& transformer_out) {
        summary.transformer = quantize_rtn_checkpoint(transformer_in, transformer_out, opts);
      },
      opts.progress);
  return summary;
}

}  // namespace omni
