#include "nn/flux_transformer.h"

#include <cmath>
#include <map>
#include <unordered_map>

#include "core/error.h"
#include "nn/checkpoint_linears.h"
#include "nn/flux_blocks.h"

namespace omni {
namespace {

struct BlockWeights {
  std::unordered_map<std::string, Tensor> params;
  std::unordered_map<std::string, std::shared_ptr<const PreparedLinear>> linears;
};

// Inference context of one FLUX forward: prepared Linears, fresh activations per name, full attention within
// each sample's L joint rows.
class FluxContext : public BlockContext {
 public:
  FluxContext(Backend& backend, int64_t B, int64_t L) : backend_(backend), B_(B), L_(L) {}
  void use(const BlockWeights& w) { w_ = &w; }

  Backend& backend() override { return backend_; }
  bool training() const override { return false; }
  Tensor act(std::string_view name, const Shape& shape) override { return buffer(acts_, name, shape, backend_.activation_dtype()); }
  Tensor stat(std::string_view name, const Shape& shape) override { return buffer(stats_, name, shape, DType::F32); }
  const Tensor& param(std::string_view name) override {
    auto it = w_->params.find(std::string(name));
    OMNI_CHECK(it != w_->params.end(), "FLUX block: no parameter \"", name, "\"");
    return it->second;
  }
  void linear(std::string_view name, Tensor& y, const Tensor& x) override {
    auto it = w_->linears.find(std::string(name));
    OMNI_CHECK(it != w_->linears.end(), "FLUX block: no Linear \"", name, "\"");
    backend_.linear(y, x, *it->second);
  }
  void linear_backward(std::string_view, Tensor*, const Tensor&, const Tensor&, bool) override {
    OMNI_FAIL("FLUX inference context: no backward");
  }
  const Tensor& positions() override { OMNI_FAIL("FLUX blocks take rotary tables, not positions"); }
  void attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, Tensor* lse) override {
    OMNI_CHECK(lse == nullptr, "FLUX inference context: attention saves no lse");
    if (!rows_.slot.defined()) {
      Tensor slot = Tensor::empty({B_ * L_}, DType::I32), pos = Tensor::empty({B_ * L_}, DType::I32);
      for (int64_t r = 0; r < B_ * L_; ++r) {
        slot.data<int32_t>()[r] = static_cast<int32_t>(r / L_);
        pos.data<int32_t>()[r] = static_cast<int32_t>(r % L_);
      }
      rows_.slot = backend_.upload(slot);
      rows_.position = backend_.upload(pos);
      rows_.mask = AttentionMask::Full;
      rows_.whole_sequences = true;
    }
    const int64_t H = k.dim(-2), hd = k.dim(-1);
    backend_.attention(out, q, k.view({B_, L_, H, hd}), v.view({B_, L_, H, hd}), rows_);
  }
  void attention_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                          const Tensor&, const Tensor&) override {
    OMNI_FAIL("FLUX inference context: no backward");
  }

 private:
  Tensor buffer(std::map<std::string, Tensor, std::less<>>& m, std::string_view name, const Shape& shape, DType dt) {
    auto it = m.find(name);
    if (it != m.end() && it->second.shape() == shape) return it->second;
    Tensor t = backend_.alloc(shape, dt);
    m[std::string(name)] = t;
    return t;
  }

  Backend& backend_;
  int64_t B_, L_;
  const BlockWeights* w_ = nullptr;
  std::map<std::string, Tensor, std::less<>> acts_, stats_;
  AttentionRows rows_;
};

}  // namespace

struct FluxTransformer::Impl {
  FluxSpec spec;
  Backend& backend;
  LoadReport report;
  std::shared_ptr<const PreparedLinear> x_embedder, context_embedder, t_linear_1, t_linear_2, g_linear_1,
      g_linear_2, text_linear_1, text_linear_2, norm_out, proj_out;
  std::vector<BlockWeights> double_blocks, single_blocks;
  FluxDoubleBlock double_def;
  FluxSingleBlock single_def;
  std::function<void(const NamedTensors&)> block_input_observer;

  Impl(const FluxSpec& s, Backend& be) : spec(s), backend(be), double_def(s), single_def(s) {}

  // y [rows, out] = linear(x [rows, in]) on the backend.
  Tensor apply(const PreparedLinear& w, const Tensor& x, const Shape& out_shape) {
    Tensor y = backend.alloc(out_shape, backend.activation_dtype());
    backend.linear(y, x, w);
    return y;
  }
  Tensor silu(const Tensor& x) {
    Tensor y = backend.alloc(x.shape(), x.dtype());
    backend.silu(y, x);
    return y;
  }
  // linear_2(silu(linear_1(x))): TimestepEmbedding and PixArtAlphaTextProjection.
  Tensor mlp2(const PreparedLinear& l1, const PreparedLinear& l2, const Tensor& x) {
    const int64_t B = x.dim(0), D = spec.inner_dim();
    return apply(l2, silu(apply(l1, x, {B, D})), {B, D});
  }
  Tensor activation(const Tensor& host) { return backend.upload(host.to(backend.activation_dtype())); }
};

FluxTransformer::FluxTransformer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FluxTransformer::~FluxTransformer() = default;
const FluxSpec& FluxTransformer::spec() const { return impl_->spec; }
const LoadReport& FluxTransformer::load_report() const { return impl_->report; }
void FluxTransformer::set_block_input_observer(std::function<void(const NamedTensors&)> observer) {
  impl_->block_input_observer = std::move(observer);
}

std::unique_ptr<FluxTransformer> FluxTransformer::open(const std::string& dir, const FluxSpec& s, Backend& backend) {
  auto impl = std::make_unique<Impl>(s, backend);
  CheckpointLinears ck(dir, "diffusion_pytorch_model", backend, impl->report);
  load(*impl, ck);
  return std::unique_ptr<FluxTransformer>(new FluxTransformer(std::move(impl)));
}

std::unique_ptr<FluxTransformer> FluxTransformer::random(const FluxSpec& s, Backend& backend, uint64_t seed,
                                                         bool w4a16) {
  auto impl = std::make_unique<Impl>(s, backend);
  RandomWeightsOptions r;
  r.seed = seed;
  if (w4a16) r.quantized_prefixes = {"transformer_blocks.", "single_transformer_blocks."};
  CheckpointLinears ck(r, backend, impl->report);
  load(*impl, ck);
  return std::unique_ptr<FluxTransformer>(new FluxTransformer(std::move(impl)));
}

void FluxTransformer::load(Impl& m, CheckpointLinears& ck) {
  Impl* impl = &m;
  const FluxSpec& s = m.spec;
  const std::string& dir = ck.dir();
  const int64_t D = s.inner_dim(), T = FluxSpec::kTimestepChannels;
  impl->x_embedder = ck.linear("x_embedder", s.in_channels, D, true);
  impl->context_embedder = ck.linear("context_embedder", s.joint_attention_dim, D, true);
  impl->t_linear_1 = ck.linear("time_text_embed.timestep_embedder.linear_1", T, D, true);
  impl->t_linear_2 = ck.linear("time_text_embed.timestep_embedder.linear_2", D, D, true);
  if (s.guidance_embeds) {
    impl->g_linear_1 = ck.linear("time_text_embed.guidance_embedder.linear_1", T, D, true);
    impl->g_linear_2 = ck.linear("time_text_embed.guidance_embedder.linear_2", D, D, true);
  }
  impl->text_linear_1 = ck.linear("time_text_embed.text_embedder.linear_1", s.pooled_projection_dim, D, true);
  impl->text_linear_2 = ck.linear("time_text_embed.text_embedder.linear_2", D, D, true);
  impl->norm_out = ck.linear("norm_out.linear", D, 2 * D, true);
  impl->proj_out = ck.linear("proj_out", D, s.out_channels, true);
  auto load_blocks = [&](const Block& def, const std::string& prefix, int64_t n, std::vector<BlockWeights>& out) {
    for (int64_t i = 0; i < n; ++i) {
      const std::string p = prefix + "." + std::to_string(i) + ".";
      BlockWeights w;
      for (const ParamDesc& d : def.params()) w.params[d.name] = ck.param_f32(p + d.name, d.shape);
      for (const LinearDesc& d : def.linears())
        w.linears[d.name] = ck.linear(p + d.name, d.in_features, d.out_features, d.has_bias);
      out.push_back(std::move(w));
    }
  };
  load_blocks(impl->double_def, "transformer_blocks", s.num_layers, impl->double_blocks);
  load_blocks(impl->single_def, "single_transformer_blocks", s.num_single_layers, impl->single_blocks);
  const std::vector<std::string> unused = ck.unused();
  if (!unused.empty()) {
    std::string list;
    for (size_t i = 0; i < unused.size() && i < 5; ++i) list += (i ? ", \"" : "\"") + unused[i] + "\"";
    if (unused.size() > 5) list += ", ...";
    OMNI_FAIL(dir, ": the checkpoint has ", unused.size(), " tensor(s) the FLUX transformer does not use (", list,
              "); does config.json (num_layers ", s.num_layers, ", num_single_layers ", s.num_single_layers,
              ", guidance_embeds ", s.guidance_embeds ? "true" : "false", ") match the checkpoint?");
  }
}

Tensor FluxTransformer::timestep_projection(const std::vector<float>& t) {
  constexpr int64_t half = FluxSpec::kTimestepChannels / 2;
  const int64_t B = static_cast<int64_t>(t.size());
  Tensor out = Tensor::empty({B, 2 * half}, DType::F32);
  // As diffusers' get_timestep_embedding computes it in f32: exponent_j = −ln(10000)·j / half, cos first.
  const float neg_log = -static_cast<float>(std::log(10000.0));
  for (int64_t b = 0; b < B; ++b) {
    float* o = out.data<float>() + b * 2 * half;
    for (int64_t j = 0; j < half; ++j) {
      const float f = std::exp(neg_log * static_cast<float>(j) / static_cast<float>(half));
      const float a = t[static_cast<size_t>(b)] * f;
      o[j] = std::cos(a);
      o[half + j] = std::sin(a);
    }
  }
  return out;
}

void FluxTransformer::rotary_tables(const FluxSpec& spec, const Tensor& ids, Tensor& cos, Tensor& sin) {
  OMNI_CHECK(ids.ndim() == 2 && ids.dim(1) == 3, "FLUX rotary ids expected [L, 3], found ", shape_str(ids.shape()));
  const Tensor f = ids.to(DType::F32);
  const int64_t L = ids.dim(0), hd = spec.head_dim;
  cos = Tensor::empty({L, hd}, DType::F32);
  sin = Tensor::empty({L, hd}, DType::F32);
  for (int64_t r = 0; r < L; ++r) {
    int64_t col = 0;
    for (int axis = 0; axis < 3; ++axis) {
      const int64_t d = spec.axes_dims_rope[static_cast<size_t>(axis)];
      const double p = f.data<float>()[r * 3 + axis];
      for (int64_t j = 0; j < d / 2; ++j) {
        const double omega = 1.0 / std::pow(FluxSpec::kRopeTheta, static_cast<double>(2 * j) / static_cast<double>(d));
        const double a = p * omega;
        const float c = static_cast<float>(std::cos(a)), s = static_cast<float>(std::sin(a));
        cos.data<float>()[r * hd + col] = cos.data<float>()[r * hd + col + 1] = c;
        sin.data<float>()[r * hd + col] = sin.data<float>()[r * hd + col + 1] = s;
        col += 2;
      }
    }
  }
}

Tensor FluxTransformer::forward(const FluxInputs& in, FluxTrace* trace) {
  Impl& m = *impl_;
  const FluxSpec& s = m.spec;
  Backend& be = m.backend;
  const int64_t D = s.inner_dim();
  const Tensor& hs = in.hidden_states;
  const Tensor& ehs = in.encoder_hidden_states;
  OMNI_CHECK(hs.ndim() == 3 && hs.dim(2) == s.in_channels, "FLUX forward: hidden_states expected [B, Ni, ",
             s.in_channels, "], found ", shape_str(hs.shape()));
  const int64_t B = hs.dim(0), Ni = hs.dim(1);
  OMNI_CHECK(ehs.ndim() == 3 && ehs.dim(0) == B && ehs.dim(2) == s.joint_attention_dim,
             "FLUX forward: encoder_hidden_states expected [", B, ", Nt, ", s.joint_attention_dim, "], found ",
             shape_str(ehs.shape()));
  const int64_t Nt = ehs.dim(1), L = Nt + Ni;
  OMNI_CHECK(in.pooled_projections.shape() == (Shape{B, s.pooled_projection_dim}),
             "FLUX forward: pooled_projections expected [", B, ", ", s.pooled_projection_dim, "], found ",
             shape_str(in.pooled_projections.shape()));
  OMNI_CHECK(static_cast<int64_t>(in.timestep.size()) == B, "FLUX forward: ", in.timestep.size(),
             " timesteps for a batch of ", B);
  OMNI_CHECK(static_cast<int64_t>(in.guidance.size()) == (s.guidance_embeds ? B : 0), "FLUX forward: ",
             in.guidance.size(), " guidance values; this model ",
             s.guidance_embeds ? "embeds guidance (one per sample)" : "has no guidance embedding (give none)");
  OMNI_CHECK(in.img_ids.shape() == (Shape{Ni, 3}) && in.txt_ids.shape() == (Shape{Nt, 3}),
             "FLUX forward: img_ids expected [", Ni, ", 3] and txt_ids [", Nt, ", 3], found ",
             shape_str(in.img_ids.shape()), " and ", shape_str(in.txt_ids.shape()));

  const DType act = be.activation_dtype();
  NamedTensors io;
  io.set("img", m.apply(*m.x_embedder, m.activation(hs), {B, Ni, D}));
  io.set("txt", m.apply(*m.context_embedder, m.activation(ehs), {B, Nt, D}));

  // temb = timestep_embedder(proj(t·1000)) [+ guidance_embedder(proj(g·1000))] + text_embedder(pooled).
  auto scaled = [](const std::vector<float>& v) {
    std::vector<float> o(v);
    for (float& x : o) x *= 1000.0f;
    return o;
  };
  Tensor temb = m.mlp2(*m.t_linear_1, *m.t_linear_2, m.activation(timestep_projection(scaled(in.timestep))));
  if (s.guidance_embeds) {
    const Tensor g = m.mlp2(*m.g_linear_1, *m.g_linear_2, m.activation(timestep_projection(scaled(in.guidance))));
    be.add(temb, temb, g);
  }
  be.add(temb, temb, m.mlp2(*m.text_linear_1, *m.text_linear_2, m.activation(in.pooled_projections)));
  io.set("temb", temb);
  if (trace) trace->temb = be.download(temb);

  // Rotary tables over [txt; img], repeated for each sample.
  Tensor ids = Tensor::empty({L, 3}, DType::F32);
  const Tensor ti = in.txt_ids.to(DType::F32), ii = in.img_ids.to(DType::F32);
  std::copy(ti.data<float>(), ti.data<float>() + Nt * 3, ids.data<float>());
  std::copy(ii.data<float>(), ii.data<float>() + Ni * 3, ids.data<float>() + Nt * 3);
  Tensor cos1, sin1;
  rotary_tables(s, ids, cos1, sin1);
  Tensor cos = Tensor::empty({B * L, s.head_dim}, DType::F32), sin = Tensor::empty({B * L, s.head_dim}, DType::F32);
  for (int64_t b = 0; b < B; ++b) {
    std::copy(cos1.data<float>(), cos1.data<float>() + L * s.head_dim, cos.data<float>() + b * L * s.head_dim);
    std::copy(sin1.data<float>(), sin1.data<float>() + L * s.head_dim, sin.data<float>() + b * L * s.head_dim);
  }
  io.set("rope_cos", be.upload(cos));
  io.set("rope_sin", be.upload(sin));
  if (m.block_input_observer) m.block_input_observer(io);

  FluxContext ctx(be, B, L);
  auto run = [&](const Block& def, const BlockWeights& w) {
    ctx.use(w);
    NamedTensors out;
    out.set("img", be.alloc({B, Ni, D}, act));
    out.set("txt", be.alloc({B, Nt, D}, act));
    def.forward(ctx, io, out);
    io.set("img", out.at("img"));
    io.set("txt", out.at("txt"));
    if (trace) {
      trace->block_img.push_back(be.download(io.at("img")));
      trace->block_txt.push_back(be.download(io.at("txt")));
    }
  };
  for (const BlockWeights& w : m.double_blocks) run(m.double_def, w);
  for (const BlockWeights& w : m.single_blocks) run(m.single_def, w);

  // norm_out: (scale, shift) = chunks of linear(silu(temb)) — scale first, unlike the blocks.
  const Tensor e = m.apply(*m.norm_out, m.silu(temb), {B, 2 * D});
  Tensor scale = be.alloc({B, D}, act), shift = be.alloc({B, D}, act);
  Tensor idx = Tensor::empty({B}, DType::I32), idx2 = Tensor::empty({B}, DType::I32);
  for (int64_t b = 0; b < B; ++b) {
    idx.data<int32_t>()[b] = static_cast<int32_t>(2 * b);
    idx2.data<int32_t>()[b] = static_cast<int32_t>(2 * b + 1);
  }
  be.embedding(scale, be.upload(idx), e.view({2 * B, D}));
  be.embedding(shift, be.upload(idx2), e.view({2 * B, D}));
  Tensor x = be.alloc(io.at("img").shape(), act);  // not in place: the last block's output may be traced
  be.layer_norm(x, io.at("img"), FluxSpec::kNormEps);
  be.modulate(x, x, scale, shift);
  return be.download(m.apply(*m.proj_out, x, {B, Ni, s.out_channels}));
}

}  // namespace omni
