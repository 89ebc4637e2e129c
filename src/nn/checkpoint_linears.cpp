#include "nn/checkpoint_linears.h"

#include <cmath>

#include "core/error.h"
#include "nn/random_weights.h"
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
    zero_convention_ = detect_checkpoint_zero_point_convention(*ckpt_, *quant_);
  }
}

CheckpointLinears::CheckpointLinears(const RandomWeightsOptions& random, Backend& backend, LoadReport& report)
    : dir_("random weights"), backend_(backend), report_(report), random_(random) {
  if (!random.quantized_prefixes.empty())
    report_.quant_format = "random " + std::to_string(random.bits) + "-bit codes, group " +
                           std::to_string(random.group_size) + " (benchmark weights)";
}

Tensor CheckpointLinears::dense(const std::string& name, const Shape& shape) {
  if (random_) {
    // Weights ±1/sqrt(fan-in), biases small, 1-D parameters (norm weights) near 1.
    const bool vector = shape.size() == 1;
    const float fan_in = shape.size() >= 2 ? static_cast<float>(shape.back()) : 1.f;
    return random_bf16(shape, random_->seed, name, vector ? 0.05f : 1.f / std::sqrt(fan_in),
                       vector && name.find("bias") == std::string::npos ? 1.f : 0.f);
  }
  OMNI_CHECK(ckpt_->contains(name), dir_, ": tensor \"", name, "\" is missing from the checkpoint");
  used_.insert(name);
  Tensor t = ckpt_->weight(name);
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
  bool random_quantized = false;
  if (random_)
    for (const std::string& q : random_->quantized_prefixes) random_quantized = random_quantized || prefix.rfind(q, 0) == 0;
  // As the quantizers do, a layer whose inputs do not split into whole groups stays dense.
  random_quantized = random_quantized && in % random_->group_size == 0;
  if (random_quantized) {
    w.quantized = random_grouped_int(in, out, random_->bits, random_->group_size, random_->seed, prefix);
    w.is_quantized = true;
    ++report_.quantized_linears;
  } else if (ckpt_ && ckpt_->contains(prefix + ".qweight")) {
    OMNI_CHECK(quant_.has_value(), dir_, ": tensor \"", prefix,
               ".qweight\" is present but config.json has no quantization_config");
    w.quantized = read_quantized_linear(*ckpt_, prefix, *quant_, {in, out, zero_convention_});
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
  if (!ckpt_) return out;
  for (const std::string& name : ckpt_->names())
    if (!used_.count(name)) out.push_back(name);
  return out;
}

}  // namespace omni
