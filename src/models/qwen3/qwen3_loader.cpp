#include "models/qwen3/qwen3_loader.h"

#include <optional>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/qwen3/qwen3_names.h"
#include "quant/checkpoint_reader.h"
#include "quant/quant_config.h"
#include "quant/quant_summary.h"

namespace omni {
namespace {

bool is_float_dtype(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

class Loader {
 public:
  Loader(const std::string& dir, const Qwen3Config& config, Backend& backend, LoadReport& report)
      : dir_(dir), config_(config), backend_(backend), report_(report),
        ckpt_(SafetensorsCheckpoint::open_dir(dir)) {
    quant_ = read_quantization_config(dir);
    if (quant_) {
      report_.quant_format = describe_quantization(*quant_);
      zero_convention_ = detect_checkpoint_zero_point_convention(ckpt_, *quant_);
    }
  }

  // A float tensor of the expected shape.
  Tensor dense(const std::string& name, const Shape& shape) {
    OMNI_CHECK(ckpt_.contains(name), dir_, ": tensor \"", name, "\" is missing from the checkpoint");
    Tensor t = ckpt_.tensor(name);
    OMNI_CHECK(is_float_dtype(t.dtype()), dir_, ": tensor \"", name, "\" has dtype ", dtype_name(t.dtype()),
               ", expected F32, BF16 or F16");
    OMNI_CHECK(t.shape() == shape, dir_, ": tensor \"", name, "\" has shape ", shape_str(t.shape()), ", expected ",
               shape_str(shape));
    return t;
  }

  std::shared_ptr<const PreparedLinear> linear(const std::string& prefix, int64_t in, int64_t out, bool bias) {
    LinearWeight w;
    if (ckpt_.contains(prefix + ".qweight")) {
      OMNI_CHECK(quant_.has_value(), dir_, ": tensor \"", prefix,
                 ".qweight\" is present but config.json has no quantization_config");
      w.quantized = read_quantized_linear(ckpt_, prefix, *quant_, {in, out, zero_convention_});
      w.is_quantized = true;
      ++report_.quantized_linears;
    } else {
      w.dense = dense(prefix + ".weight", {out, in});
      ++report_.dense_linears;
    }
    if (bias) w.bias = dense(prefix + ".bias", {out});
    return backend_.prepare_linear(w);
  }

  Qwen3Weights load() {
    const auto& c = config_;
    const int64_t D = c.hidden_size, hd = c.head_dim, I = c.intermediate_size;
    Qwen3Weights w;
    w.embed_tokens = dense(std::string(qwen3::kEmbedTokens), {c.vocab_size, D});
    w.final_norm = dense(std::string(qwen3::kFinalNorm), {D});
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      auto name = [&](std::string_view suffix) { return qwen3::block_tensor(l, suffix); };
      Qwen3Block b;
      b.input_layernorm = dense(name("input_layernorm.weight"), {D});
      b.post_attention_layernorm = dense(name("post_attention_layernorm.weight"), {D});
      b.q_norm = dense(name("self_attn.q_norm.weight"), {hd});
      b.k_norm = dense(name("self_attn.k_norm.weight"), {hd});
      const bool ab = c.attention_bias;
      b.q_proj = linear(name("self_attn.q_proj"), D, c.num_attention_heads * hd, ab);
      b.k_proj = linear(name("self_attn.k_proj"), D, c.num_key_value_heads * hd, ab);
      b.v_proj = linear(name("self_attn.v_proj"), D, c.num_key_value_heads * hd, ab);
      b.o_proj = linear(name("self_attn.o_proj"), c.num_attention_heads * hd, D, false);
      b.gate_proj = linear(name("mlp.gate_proj"), D, I, false);
      b.up_proj = linear(name("mlp.up_proj"), D, I, false);
      b.down_proj = linear(name("mlp.down_proj"), I, D, false);
      w.blocks.push_back(std::move(b));
    }
    // A tied head reuses the embedding table as its weight.
    if (c.tie_word_embeddings && !ckpt_.contains(std::string(qwen3::kLmHead))) {
      LinearWeight head;
      head.dense = w.embed_tokens;
      w.lm_head = backend_.prepare_linear(head);
    } else {
      w.lm_head = linear("lm_head", D, c.vocab_size, false);
    }
    return w;
  }

 private:
  std::string dir_;
  const Qwen3Config& config_;
  Backend& backend_;
  LoadReport& report_;
  SafetensorsCheckpoint ckpt_;
  std::optional<QuantizationConfig> quant_;
  ZeroPointConvention zero_convention_ = ZeroPointConvention::Unknown;
};

}  // namespace

Qwen3Weights load_qwen3_weights(const std::string& dir, const Qwen3Config& config, Backend& backend,
                                LoadReport& report) {
  try {
    return Loader(dir, config, backend, report).load();
  } catch (const Error&) {
    rethrow_with_context("loading " + dir);
  }
}

}  // namespace omni
