#include "nn/checkpoint_linears.h"

#include "core/error.h"
#include "quant/checkpoint_reader.h"
#include "quant/quant_summary.h"

namespace omni {
namespace {

bool is_float_dtype(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

}  // namespace

CheckpointLinears::CheckpointLinears(const std::string& dir, const std::string& stem, Backend& backend,
                                     LoadReport& report)
    : dir_(dir), backend_(backend), report_(report), ckpt_(SafetensorsCheckpoint::open_dir(dir, stem)) {
  quant_ = read_quantization_config(dir);
  if (quant_) {
    report_.quant_format = describe_quantization(*quant_);
    zero_convention_ = detect_checkpoint_zero_point_convention(ckpt_, *quant_);
  }
}

Tensor CheckpointLinears::dense(const std::string& name, const Shape& shape) {
  OMNI_CHECK(ckpt_.contains(name), dir_, ": tensor \"", name, "\" is missing from the checkpoint");
  used_.insert(name);
  Tensor t = ckpt_.weight(name);
  OMNI_CHECK(is_float_dtype(t.dtype()), dir_, ": tensor \"", name, "\" has dtype ", dtype_name(t.dtype()),
             ", expected F32, BF16 or F16");
  OMNI_CHECK(t.shape() == shape, dir_, ": tensor \"", name, "\" has shape ", shape_str(t.shape()), ", expected ",
             shape_str(shape));
  return t;
}

Tensor CheckpointLinears::param_f32(const std::string& name, const Shape& shape) {
  return backend_.upload(dense(name, shape).to(DType::F32));
}

std::shared_ptr<const PreparedLinear> CheckpointLinears::linear(const std::string& prefix, int64_t in, int64_t out,
                                                                bool bias) {
  LinearWeight w;
  if (ckpt_.contains(prefix + ".qweight")) {
    OMNI_CHECK(quant_.has_value(), dir_, ": tensor \"", prefix,
               ".qweight\" is present but config.json has no quantization_config");
    w.quantized = read_quantized_linear(ckpt_, prefix, *quant_, {in, out, zero_convention_});
    w.is_quantized = true;
    for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"}) used_.insert(prefix + part);
    ++report_.quantized_linears;
  } else {
    w.dense = dense(prefix + ".weight", {out, in});
    ++report_.dense_linears;
  }
  if (bias) w.bias = dense(prefix + ".bias", {out});
  auto prepared = backend_.prepare_linear(w);
  ++report_.linear_layouts[prepared->layout()];
  report_.linear_weight_bytes += prepared->weight_bytes;
  return prepared;
}

std::vector<std::string> CheckpointLinears::unused() const {
  std::vector<std::string> out;
  for (const std::string& name : ckpt_.names())
    if (!used_.count(name)) out.push_back(name);
  return out;
}

}  // namespace omni
