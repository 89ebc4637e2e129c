#include "nn/t5_encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "nn/checkpoint_linears.h"

namespace omni {
namespace {

const char* const kWhat = "T5 encoder";
const char* const kNoBackward =
    "the backward of the text encoder blocks is not written: the text encoders run forward only";
const char* const kBiasTable = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";

Tensor upload_i32(Backend& be, const std::vector<int64_t>& v) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::I32);
  for (size_t i = 0; i < v.size(); ++i) t.data<int32_t>()[i] = static_cast<int32_t>(v[i]);
  return be.upload(t);
}

}  // namespace

int64_t t5_relative_position_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2;  // buckets for each sign
  const int64_t base = rel > 0 ? half : 0;
  const int64_t n = rel < 0 ? -rel : rel;
  const int64_t max_exact = half / 2;
  if (n < max_exact) return base + n;
  // The f32 arithmetic of the reference: log(n / max_exact) / log(max_distance / max_exact) · (half − max_exact),
  // the divisor a double rounded to f32, the product truncated.
  const float divisor =
      static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float v = std::log(static_cast<float>(n) / static_cast<float>(max_exact)) / divisor *
                  static_cast<float>(half - max_exact);
  return base + std::min<int64_t>(max_exact + static_cast<int64_t>(v), half - 1);
}

Tensor t5_position_bias(const T5EncoderSpec& spec, const Tensor& table, int64_t L) {
  const int64_t H = spec.num_heads, nb = spec.relative_attention_num_buckets;
  OMNI_CHECK(table.shape() == (Shape{nb, H}), kWhat, ": relative_attention_bias expected ", shape_str(Shape{nb, H}),
             ", found ", shape_str(table.shape()));
  OMNI_CHECK(L > 0, kWhat, ": position bias of an empty sequence");
  const Tensor t = table.to(DType::F32);
  std::vector<int64_t> bucket(static_cast<size_t>(2 * L - 1));  // rel = −(L−1) .. L−1
  for (int64_t r = -(L - 1); r < L; ++r)
    bucket[static_cast<size_t>(r + L - 1)] =
        t5_relative_position_bucket(r, nb, spec.relative_attention_max_distance);
  Tensor bias = Tensor::empty({H, L, L}, DType::F32);
  float* o = bias.data<float>();
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < L; ++j)
        o[(h * L + i) * L + j] = t.data<float>()[bucket[static_cast<size_t>(j - i + L - 1)] * H + h];
  return bias;
}

T5EncoderBlock::T5EncoderBlock(const T5EncoderSpec& spec) : spec_(spec) {
  const int64_t D = spec.d_model, I = spec.inner_dim(), F = spec.d_ff;
  linears_ = {{"layer.0.SelfAttention.q", D, I, false},      {"layer.0.SelfAttention.k", D, I, false},
              {"layer.0.SelfAttention.v", D, I, false},      {"layer.0.SelfAttention.o", I, D, false},
              {"layer.1.DenseReluDense.wi_0", D, F, false},  {"layer.1.DenseReluDense.wi_1", D, F, false},
              {"layer.1.DenseReluDense.wo", F, D, false}};
  params_ = {{"layer.0.layer_norm.weight", {D}}, {"layer.1.layer_norm.weight", {D}}};
}

void T5EncoderBlock::forward(BlockContext& ctx, const NamedTensors& in, NamedTensors& out) const {
  Backend& be = ctx.backend();
  const Tensor& x = in.at("hidden");
  const Tensor& bias = in.at("position_bias");
  const int64_t D = spec_.d_model, I = spec_.inner_dim(), F = spec_.d_ff, H = spec_.num_heads, dk = spec_.d_kv;
  OMNI_CHECK(x.ndim() == 3 && x.dim(2) == D, "T5 encoder block: hidden expected [B, L, ", D, "], found ",
             shape_str(x.shape()));
  const int64_t B = x.dim(0), L = x.dim(1);
  OMNI_CHECK(bias.shape() == (Shape{H, L, L}), "T5 encoder block: position_bias expected ",
             shape_str(Shape{H, L, L}), ", found ", shape_str(bias.shape()));
  const float eps = spec_.layer_norm_epsilon;

  // h + o(attention(RMS(h)) + relative position bias), scores unscaled
  Tensor y = ctx.act("attn.norm", x.shape());
  be.rms_norm(y, x, ctx.param("layer.0.layer_norm.weight"), eps);
  Tensor q = ctx.act("attn.q", {B, L, I}), k = ctx.act("attn.k", {B, L, I}), v = ctx.act("attn.v", {B, L, I});
  ctx.linear("layer.0.SelfAttention.q", q, y);
  ctx.linear("layer.0.SelfAttention.k", k, y);
  ctx.linear("layer.0.SelfAttention.v", v, y);
  Tensor o = ctx.act("attn.out", {B, L, H, dk});
  be.attention_with_bias(o, q.view({B, L, H, dk}), k.view({B, L, H, dk}), v.view({B, L, H, dk}), bias, 1.0f);
  Tensor p = ctx.act("attn.proj", x.shape());
  ctx.linear("layer.0.SelfAttention.o", p, o.view({B, L, I}));
  Tensor& h = out.at("hidden");
  be.add(h, x, p);

  // h + wo(gelu_tanh(wi_0(RMS(h))) · wi_1(RMS(h)))
  Tensor y2 = ctx.act("ff.norm", x.shape());
  be.rms_norm(y2, h, ctx.param("layer.1.layer_norm.weight"), eps);
  Tensor gate = ctx.act("ff.gate", {B, L, F}), up = ctx.act("ff.up", {B, L, F});
  ctx.linear("layer.1.DenseReluDense.wi_0", gate, y2);
  ctx.linear("layer.1.DenseReluDense.wi_1", up, y2);
  be.gelu_tanh(gate, gate);
  be.mul(gate, gate, up);
  Tensor f = ctx.act("ff.out", x.shape());
  ctx.linear("layer.1.DenseReluDense.wo", f, gate);
  be.add(h, h, f);
}

void T5EncoderBlock::backward(BlockContext&, const NamedTensors&, NamedTensors*) const { OMNI_FAIL(kNoBackward); }

struct T5Encoder::Impl {
  T5EncoderSpec spec;
  Backend& backend;
  LoadReport report;
  T5EncoderBlock block_def;
  Tensor embedding;   // [V, D] on the backend, the checkpoint's dtype
  Tensor bias_table;  // [num_buckets, H] on the host, the checkpoint's dtype
  std::vector<EncoderLayerWeights> blocks;
  Tensor final_weight;  // F32 [D]

  Impl(const T5EncoderSpec& s, Backend& be) : spec(s), backend(be), block_def(s) {}
};

T5Encoder::T5Encoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
T5Encoder::~T5Encoder() = default;
const T5EncoderSpec& T5Encoder::spec() const { return impl_->spec; }
const LoadReport& T5Encoder::load_report() const { return impl_->report; }

std::unique_ptr<T5Encoder> T5Encoder::open(const std::string& dir, const T5EncoderSpec& s, Backend& backend) {
  auto impl = std::make_unique<Impl>(s, backend);
  CheckpointLinears ck(dir, "model", backend, impl->report);
  const Shape emb{s.vocab_size, s.d_model};
  const char* const shared = "shared.weight";
  const char* const alias = "encoder.embed_tokens.weight";  // the encoder's tied view of shared
  OMNI_CHECK(ck.contains(shared) || ck.contains(alias), dir, ": the checkpoint has neither \"", shared, "\" nor \"",
             alias, "\" (the token embedding)");
  Tensor table = ck.dense(ck.contains(shared) ? shared : alias, emb);
  if (ck.contains(shared) && ck.contains(alias)) {
    const Tensor other = ck.dense(alias, emb);
    OMNI_CHECK(other.dtype() == table.dtype() && std::memcmp(other.raw(), table.raw(), table.nbytes()) == 0, dir,
               ": \"", shared, "\" and \"", alias, "\" differ; the encoder's embedding is tied to the shared one");
  }
  impl->embedding = backend.upload(table);
  impl->bias_table = ck.dense(kBiasTable, {s.relative_attention_num_buckets, s.num_heads});
  for (int64_t i = 0; i < s.num_layers; ++i) {
    std::string prefix = "encoder.block.";
    prefix.append(std::to_string(i)).append(".");
    impl->blocks.push_back(load_layer_weights(ck, impl->block_def, prefix));
  }
  impl->final_weight = ck.param_f32("encoder.final_layer_norm.weight", {s.d_model});
  const std::vector<std::string> unused = ck.unused();
  if (!unused.empty()) {
    std::string list;
    for (size_t i = 0; i < unused.size() && i < 5; ++i) list.append(i ? ", \"" : "\"").append(unused[i]).append("\"");
    if (unused.size() > 5) list.append(", ...");
    OMNI_FAIL(dir, ": the checkpoint has ", unused.size(), " tensor(s) T5EncoderModel does not use (", list,
              "); does config.json (num_layers ", s.num_layers,
              ") match the checkpoint? (a decoder, or a relative_attention_bias in a block other than 0 as in "
              "UMT5, is not supported)");
  }
  return std::unique_ptr<T5Encoder>(new T5Encoder(std::move(impl)));
}

Tensor T5Encoder::position_bias(int64_t L) const { return t5_position_bias(impl_->spec, impl_->bias_table, L); }

Tensor T5Encoder::forward(const Tensor& input_ids, TextEncoderTrace* trace) {
  Impl& m = *impl_;
  const T5EncoderSpec& s = m.spec;
  Backend& be = m.backend;
  const std::vector<int64_t> ids = read_token_ids(input_ids, s.vocab_size, kWhat);
  const int64_t B = input_ids.dim(0), L = input_ids.dim(1), D = s.d_model;
  const DType act = be.activation_dtype();

  Tensor h = be.alloc({B, L, D}, act);
  be.embedding(h, upload_i32(be, ids), m.embedding);
  if (trace) trace->embeddings = be.download(h);

  NamedTensors io;
  io.set("hidden", h);
  io.set("position_bias", be.upload(position_bias(L)));  // block 0's, for every block
  EncoderContext ctx(be, B, L, AttentionMask::Full);
  for (const EncoderLayerWeights& w : m.blocks) {
    ctx.use(w);
    NamedTensors out;
    out.set("hidden", be.alloc({B, L, D}, act));
    m.block_def.forward(ctx, io, out);
    io.set("hidden", out.at("hidden"));
    if (trace) trace->layers.push_back(be.download(io.at("hidden")));
  }
  Tensor y = be.alloc({B, L, D}, act);
  be.rms_norm(y, io.at("hidden"), m.final_weight, s.layer_norm_epsilon);
  return be.download(y);
}

}  // namespace omni
