#include "nn/clip_text_encoder.h"

#include <algorithm>

#include "core/error.h"
#include "nn/checkpoint_linears.h"

namespace omni {
namespace {

const char* const kWhat = "CLIP text encoder";
const char* const kNoBackward =
    "the backward of the text encoder layers is not written: the text encoders run forward only";

// I32 tensor on the backend.
Tensor upload_i32(Backend& be, const std::vector<int64_t>& v) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::I32);
  for (size_t i = 0; i < v.size(); ++i) t.data<int32_t>()[i] = static_cast<int32_t>(v[i]);
  return be.upload(t);
}

// "", or "text_model." where the checkpoint keeps the names under CLIPTextModel's old submodule.
std::string clip_prefix(const CheckpointLinears& ck) {
  return ck.contains("text_model.embeddings.token_embedding.weight") ? "text_model." : "";
}

}  // namespace

ClipEncoderLayer::ClipEncoderLayer(const ClipTextSpec& spec) : spec_(spec) {
  const int64_t D = spec.hidden_size, F = spec.intermediate_size;
  linears_ = {{"self_attn.q_proj", D, D, true},  {"self_attn.k_proj", D, D, true}, {"self_attn.v_proj", D, D, true},
              {"self_attn.out_proj", D, D, true}, {"mlp.fc1", D, F, true},          {"mlp.fc2", F, D, true}};
  for (const char* n : {"layer_norm1.weight", "layer_norm1.bias", "layer_norm2.weight", "layer_norm2.bias"})
    params_.push_back({n, {D}});
}

void ClipEncoderLayer::forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const {
  Backend& be = ctx.backend();
  const Tensor& x = in.at("hidden");
  const int64_t D = spec_.hidden_size, F = spec_.intermediate_size, H = spec_.num_heads, hd = spec_.head_dim();
  OMNI_CHECK(x.ndim() == 3 && x.dim(2) == D, "CLIP encoder layer: hidden expected [B, L, ", D, "], found ",
             shape_str(x.shape()));
  const int64_t B = x.dim(0), L = x.dim(1), N = B * L;
  const float eps = spec_.layer_norm_eps;

  // h + out_proj(attention(LN1(h)))
  Tensor y = ctx.act("attn.norm", x.shape());
  be.layer_norm(y, x, eps, &ctx.param("layer_norm1.weight"), &ctx.param("layer_norm1.bias"));
  Tensor q = ctx.act("attn.q", {N, D}), k = ctx.act("attn.k", {N, D}), v = ctx.act("attn.v", {N, D});
  ctx.linear("self_attn.q_proj", q, y);
  ctx.linear("self_attn.k_proj", k, y);
  ctx.linear("self_attn.v_proj", v, y);
  Tensor o = ctx.act("attn.out", {N, H, hd});
  ctx.attention(o, q.view({N, H, hd}), k.view({N, H, hd}), v.view({N, H, hd}), nullptr);
  Tensor p = ctx.act("attn.proj", x.shape());
  ctx.linear("self_attn.out_proj", p, o.view({B, L, D}));
  Tensor& h = out.at("hidden");
  be.add(h, x, p);

  // h + fc2(quick_gelu(fc1(LN2(h))))
  Tensor y2 = ctx.act("mlp.norm", x.shape());
  be.layer_norm(y2, h, eps, &ctx.param("layer_norm2.weight"), &ctx.param("layer_norm2.bias"));
  Tensor f = ctx.act("mlp.hidden", {B, L, F});
  ctx.linear("mlp.fc1", f, y2);
  be.quick_gelu(f, f);
  Tensor m = ctx.act("mlp.out", x.shape());
  ctx.linear("mlp.fc2", m, f);
  be.add(h, h, m);
}

void ClipEncoderLayer::backward(BlockContext&, const NamedTensors&, NamedTensors*) const { OMNI_FAIL(kNoBackward); }

struct ClipTextEncoder::Impl {
  ClipTextSpec spec;
  Backend& backend;
  LoadReport report;
  ClipEncoderLayer layer_def;
  Tensor token_embedding, position_embedding;  // [V, D], [P, D] on the backend, the checkpoint's dtype
  std::vector<EncoderLayerWeights> layers;
  Tensor final_weight, final_bias;             // F32 [D]

  Impl(const ClipTextSpec& s, Backend& be) : spec(s), backend(be), layer_def(s) {}
};

ClipTextEncoder::ClipTextEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipTextEncoder::~ClipTextEncoder() = default;
const ClipTextSpec& ClipTextEncoder::spec() const { return impl_->spec; }
const LoadReport& ClipTextEncoder::load_report() const { return impl_->report; }

std::unique_ptr<ClipTextEncoder> ClipTextEncoder::open(const std::string& dir, const ClipTextSpec& s,
                                                       Backend& backend) {
  auto impl = std::make_unique<Impl>(s, backend);
  CheckpointLinears ck(dir, "model", backend, impl->report);
  const std::string p = clip_prefix(ck);
  const int64_t D = s.hidden_size;
  impl->token_embedding = backend.upload(ck.dense(p + "embeddings.token_embedding.weight", {s.vocab_size, D}));
  impl->position_embedding =
      backend.upload(ck.dense(p + "embeddings.position_embedding.weight", {s.max_position_embeddings, D}));
  for (int64_t i = 0; i < s.num_layers; ++i) {
    std::string layer = p;
    layer.append("encoder.layers.").append(std::to_string(i)).append(".");
    impl->layers.push_back(load_layer_weights(ck, impl->layer_def, layer));
  }
  impl->final_weight = ck.param_f32(p + "final_layer_norm.weight", {D});
  impl->final_bias = ck.param_f32(p + "final_layer_norm.bias", {D});
  std::vector<std::string> unused = ck.unused();
  const std::string position_ids = p + "embeddings.position_ids";  // a buffer of older checkpoints, not a weight
  unused.erase(std::remove(unused.begin(), unused.end(), position_ids), unused.end());
  if (!unused.empty()) {
    std::string list;
    for (size_t i = 0; i < unused.size() && i < 5; ++i) list.append(i ? ", \"" : "\"").append(unused[i]).append("\"");
    if (unused.size() > 5) list.append(", ...");
    OMNI_FAIL(dir, ": the checkpoint has ", unused.size(), " tensor(s) CLIPTextModel does not use (", list,
              "); does config.json (num_hidden_layers ", s.num_layers,
              ") match the checkpoint? (CLIPTextModelWithProjection's text_projection is not supported)");
  }
  return std::unique_ptr<ClipTextEncoder>(new ClipTextEncoder(std::move(impl)));
}

std::vector<int64_t> ClipTextEncoder::pooled_positions(const ClipTextSpec& spec, const Tensor& input_ids) {
  const std::vector<int64_t> ids = read_token_ids(input_ids, spec.vocab_size, kWhat);
  const int64_t B = input_ids.dim(0), L = input_ids.dim(1);
  std::vector<int64_t> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const auto row = ids.begin() + b * L;
    if (spec.legacy_pooling()) {
      out[static_cast<size_t>(b)] = std::max_element(row, row + L) - row;  // the first of the largest
    } else {
      const auto it = std::find(row, row + L, spec.eos_token_id);
      OMNI_CHECK(it != row + L, kWhat, ": sample ", b, " holds no eos_token_id ", spec.eos_token_id,
                 " (the pooled output is the row of the first EOS; the tokenizer ends every prompt with it)");
      out[static_cast<size_t>(b)] = it - row;
    }
  }
  return out;
}

ClipTextOutput ClipTextEncoder::forward(const Tensor& input_ids, TextEncoderTrace* trace) {
  Impl& m = *impl_;
  const ClipTextSpec& s = m.spec;
  Backend& be = m.backend;
  const std::vector<int64_t> ids = read_token_ids(input_ids, s.vocab_size, kWhat);
  const int64_t B = input_ids.dim(0), L = input_ids.dim(1), D = s.hidden_size;
  OMNI_CHECK(L <= s.max_position_embeddings, kWhat, ": ", L, " tokens per sample, the model has ",
             s.max_position_embeddings, " positions (max_position_embeddings)");
  const std::vector<int64_t> pooled_at = pooled_positions(s, input_ids);
  const DType act = be.activation_dtype();

  // h = token_embedding[ids] + position_embedding[0..L−1]
  std::vector<int64_t> positions(static_cast<size_t>(B * L));
  for (int64_t r = 0; r < B * L; ++r) positions[static_cast<size_t>(r)] = r % L;
  Tensor h = be.alloc({B, L, D}, act), pe = be.alloc({B, L, D}, act);
  be.embedding(h, upload_i32(be, ids), m.token_embedding);
  be.embedding(pe, upload_i32(be, positions), m.position_embedding);
  be.add(h, h, pe);
  if (trace) trace->embeddings = be.download(h);

  EncoderContext ctx(be, B, L, AttentionMask::Causal);
  NamedTensors io;
  io.set("hidden", h);
  for (const EncoderLayerWeights& w : m.layers) {
    ctx.use(w);
    NamedTensors out;
    out.set("hidden", be.alloc({B, L, D}, act));
    m.layer_def.forward(ctx, io, out);
    io.set("hidden", out.at("hidden"));
    if (trace) trace->layers.push_back(be.download(io.at("hidden")));
  }

  Tensor hs = be.alloc({B, L, D}, act);
  be.layer_norm(hs, io.at("hidden"), s.layer_norm_eps, &m.final_weight, &m.final_bias);
  std::vector<int64_t> rows(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) rows[static_cast<size_t>(b)] = b * L + pooled_at[static_cast<size_t>(b)];
  Tensor pooled = be.alloc({B, D}, act);
  be.embedding(pooled, upload_i32(be, rows), hs.view({B * L, D}));
  return {be.download(hs), be.download(pooled)};
}

}  // namespace omni
