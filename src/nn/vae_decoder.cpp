#include "nn/vae_decoder.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "nn/random_weights.h"

namespace omni {
namespace {

struct Conv {
  Tensor w, b;  // F32 [Cout, Cin, k, k], [Cout]
  int64_t padding = 0;
};

struct Norm {
  Tensor w, b;  // F32 [C]
};

struct Resnet {
  Norm norm1, norm2;
  Conv conv1, conv2;
  std::optional<Conv> shortcut;  // 1×1, when the width changes
};

struct MidAttention {
  Norm norm;
  std::shared_ptr<const PreparedLinear> q, k, v, out;
};

struct UpBlock {
  std::vector<Resnet> resnets;
  std::optional<Conv> upsampler;  // the 3×3 conv after the nearest ×2 upsample
};

}  // namespace

// The decoder.* tensors of the checkpoint by name and shape, remembering what was read (or random ones).
class VaeTensors {
 public:
  VaeTensors(const std::string& dir, Backend& backend)
      : dir_(dir), backend_(backend), ckpt_(SafetensorsCheckpoint::open_dir(dir, "diffusion_pytorch_model")) {}
  // Random weights of the asked shapes (benchmarks, nn/random_weights.h).
  VaeTensors(uint64_t random_seed, Backend& backend) : dir_("random weights"), backend_(backend), seed_(random_seed) {}

  bool contains(const std::string& name) const { return ckpt_ && ckpt_->contains(name); }

  // A float tensor of one of the expected shapes, on the host (a view into the mapped file).
  Tensor dense(const std::string& name, const std::vector<Shape>& shapes) {
    if (!ckpt_) {
      const Shape& s = shapes.front();
      int64_t fan_in = 1;
      for (size_t i = 1; i < s.size(); ++i) fan_in *= s[i];
      const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
      return s.size() == 1 ? random_bf16(s, seed_, name, 0.05f, bias ? 0.f : 1.f)
                           : random_bf16(s, seed_, name, 1.f / std::sqrt(static_cast<float>(fan_in)));
    }
    OMNI_CHECK(ckpt_->contains(name), dir_, ": tensor \"", name, "\" is missing from the checkpoint");
    used_.insert(name);
    Tensor t = ckpt_->weight(name);
    OMNI_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16 || t.dtype() == DType::F16, dir_, ": tensor \"",
               name, "\" has dtype ", dtype_name(t.dtype()), ", expected F32, BF16 or F16");
    std::string expected;
    for (const Shape& s : shapes) {
      if (t.shape() == s) return t;
      expected += (expected.empty() ? "" : " or ") + shape_str(s);
    }
    OMNI_FAIL(dir_, ": tensor \"", name, "\" has shape ", shape_str(t.shape()), ", expected ", expected);
  }
  Tensor param(const std::string& name, const Shape& shape) {
    return backend_.upload(dense(name, {shape}).to(DType::F32));
  }

  Conv conv(const std::string& prefix, int64_t cin, int64_t cout, int64_t k) {
    Conv c;
    c.w = param(prefix + ".weight", {cout, cin, k, k});
    c.b = param(prefix + ".bias", {cout});
    c.padding = k / 2;
    return c;
  }
  Norm norm(const std::string& prefix, int64_t c) {
    return {param(prefix + ".weight", {c}), param(prefix + ".bias", {c})};
  }

  // An attention projection [C, C] + bias under diffusers' name or the legacy one (a Linear or a 1×1 conv).
  std::shared_ptr<const PreparedLinear> projection(const std::string& prefix, const char* name, const char* legacy,
                                                   int64_t C) {
    std::string p = prefix + "." + name;
    if (!contains(p + ".weight") && contains(prefix + "." + legacy + ".weight")) p = prefix + "." + legacy;
    LinearWeight w;
    w.dense = dense(p + ".weight", {{C, C}, {C, C, 1, 1}}).view({C, C});
    w.bias = dense(p + ".bias", {Shape{C}});
    return backend_.prepare_linear(w);
  }

  // decoder.* names that nothing read, sorted.
  std::vector<std::string> unused_decoder_tensors() const {
    std::vector<std::string> out;
    if (!ckpt_) return out;
    for (const std::string& n : ckpt_->names())
      if (n.rfind("decoder.", 0) == 0 && !used_.count(n)) out.push_back(n);
    return out;
  }

 private:
  std::string dir_;
  Backend& backend_;
  std::optional<SafetensorsCheckpoint> ckpt_;  // absent with random weights
  uint64_t seed_ = 0;
  std::set<std::string> used_;
};

namespace {

Resnet load_resnet(VaeTensors& t, const std::string& p, int64_t cin, int64_t cout) {
  Resnet r;
  r.norm1 = t.norm(p + ".norm1", cin);
  r.conv1 = t.conv(p + ".conv1", cin, cout, 3);
  r.norm2 = t.norm(p + ".norm2", cout);
  r.conv2 = t.conv(p + ".conv2", cout, cout, 3);
  if (cin != cout) r.shortcut = t.conv(p + ".conv_shortcut", cin, cout, 1);
  return r;
}

}  // namespace

struct VaeDecoder::Impl {
  VaeDecoderSpec spec;
  Backend& backend;
  Conv conv_in, conv_out;
  Resnet mid_resnet0, mid_resnet1;
  std::optional<MidAttention> mid_attention;
  std::vector<UpBlock> up_blocks;
  Norm norm_out;

  Impl(const VaeDecoderSpec& s, Backend& be) : spec(s), backend(be) {}

  Tensor conv(const Conv& c, const Tensor& x) {
    const int64_t k = c.w.dim(2);
    Tensor y = backend.alloc({x.dim(0), c.w.dim(0), x.dim(2) + 2 * c.padding - k + 1, x.dim(3) + 2 * c.padding - k + 1},
                             backend.activation_dtype());
    backend.conv2d(y, x, c.w, &c.b, c.padding);
    return y;
  }
  Tensor norm(const Norm& n, const Tensor& x) {
    Tensor y = backend.alloc(x.shape(), x.dtype());
    backend.group_norm(y, x, spec.norm_num_groups, VaeDecoderSpec::kNormEps, &n.w, &n.b);
    return y;
  }
  Tensor norm_silu(const Norm& n, const Tensor& x) {
    Tensor y = norm(n, x);
    backend.silu(y, y);
    return y;
  }

  Tensor resnet(const Resnet& r, const Tensor& x) {
    Tensor h = conv(r.conv1, norm_silu(r.norm1, x));
    h = conv(r.conv2, norm_silu(r.norm2, h));
    const Tensor skip = r.shortcut ? conv(*r.shortcut, x) : x;
    backend.add(h, skip, h);
    return h;
  }

  // x + to_out(attention(GN(x))) over the H·W positions of each sample, one head of C channels.
  Tensor attention(const MidAttention& a, const Tensor& x) {
    const DType act = backend.activation_dtype();
    const int64_t B = x.dim(0), C = x.dim(1), P = x.dim(2) * x.dim(3);
    const Tensor n = norm(a.norm, x);
    Tensor tokens = backend.alloc({B, P, C}, act);
    backend.transpose(tokens, n.view({B, C, P}));
    Tensor q = backend.alloc({B, P, C}, act), k = backend.alloc({B, P, C}, act), v = backend.alloc({B, P, C}, act);
    backend.linear(q, tokens, *a.q);
    backend.linear(k, tokens, *a.k);
    backend.linear(v, tokens, *a.v);
    AttentionRows rows;
    Tensor slot = Tensor::empty({B * P}, DType::I32), pos = Tensor::empty({B * P}, DType::I32);
    for (int64_t r = 0; r < B * P; ++r) {
      slot.data<int32_t>()[r] = static_cast<int32_t>(r / P);
      pos.data<int32_t>()[r] = static_cast<int32_t>(r % P);
    }
    rows.slot = backend.upload(slot);
    rows.position = backend.upload(pos);
    rows.mask = AttentionMask::Full;
    rows.whole_sequences = true;
    Tensor o = backend.alloc({B * P, 1, C}, act);
    backend.attention(o, q.view({B * P, 1, C}), k.view({B, P, 1, C}), v.view({B, P, 1, C}), rows);
    backend.linear(tokens, o.view({B, P, C}), *a.out);
    Tensor y = backend.alloc({B, C, P}, act);
    backend.transpose(y, tokens);
    y = y.view(x.shape());
    backend.add(y, x, y);
    return y;
  }
};

VaeDecoder::VaeDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VaeDecoder::~VaeDecoder() = default;
const VaeDecoderSpec& VaeDecoder::spec() const { return impl_->spec; }

std::unique_ptr<VaeDecoder> VaeDecoder::open(const std::string& dir, const VaeDecoderSpec& s, Backend& backend) {
  VaeTensors t(dir, backend);
  return load(dir, s, backend, t);
}

std::unique_ptr<VaeDecoder> VaeDecoder::random(const VaeDecoderSpec& s, Backend& backend, uint64_t seed) {
  VaeTensors t(seed, backend);
  return load("random weights", s, backend, t);
}

std::unique_ptr<VaeDecoder> VaeDecoder::load(const std::string& dir, const VaeDecoderSpec& s, Backend& backend,
                                             VaeTensors& t) {
  OMNI_CHECK(!s.block_out_channels.empty(), dir, ": the VAE has no blocks");
  for (int64_t c : s.block_out_channels)
    OMNI_CHECK(c > 0 && c % s.norm_num_groups == 0, dir, ": norm_num_groups ", s.norm_num_groups,
               " does not divide the block width ", c);
  auto impl = std::make_unique<Impl>(s, backend);
  std::vector<int64_t> widths(s.block_out_channels.rbegin(), s.block_out_channels.rend());  // decoder order
  const int64_t top = widths.front();
  impl->conv_in = t.conv("decoder.conv_in", s.latent_channels, top, 3);
  impl->mid_resnet0 = load_resnet(t, "decoder.mid_block.resnets.0", top, top);
  if (s.mid_block_add_attention) {
    const std::string p = "decoder.mid_block.attentions.0";
    MidAttention a;
    a.norm = t.norm(p + ".group_norm", top);
    a.q = t.projection(p, "to_q", "query", top);
    a.k = t.projection(p, "to_k", "key", top);
    a.v = t.projection(p, "to_v", "value", top);
    a.out = t.projection(p, "to_out.0", "proj_attn", top);
    impl->mid_attention = std::move(a);
  }
  impl->mid_resnet1 = load_resnet(t, "decoder.mid_block.resnets.1", top, top);
  int64_t cin = top;
  for (size_t i = 0; i < widths.size(); ++i) {
    const std::string p = "decoder.up_blocks." + std::to_string(i);
    UpBlock b;
    for (int64_t r = 0; r <= s.layers_per_block; ++r) {
      b.resnets.push_back(load_resnet(t, p + ".resnets." + std::to_string(r), cin, widths[i]));
      cin = widths[i];
    }
    if (i + 1 < widths.size()) b.upsampler = t.conv(p + ".upsamplers.0.conv", cin, cin, 3);
    impl->up_blocks.push_back(std::move(b));
  }
  impl->norm_out = t.norm("decoder.conv_norm_out", cin);
  impl->conv_out = t.conv("decoder.conv_out", cin, s.out_channels, 3);
  const std::vector<std::string> unused = t.unused_decoder_tensors();
  if (!unused.empty()) {
    std::string list;
    for (size_t i = 0; i < unused.size() && i < 5; ++i) list.append(i ? ", \"" : "\"").append(unused[i]).append("\"");
    if (unused.size() > 5) list += ", ...";
    OMNI_FAIL(dir, ": the checkpoint has ", unused.size(), " decoder tensor(s) this decoder does not use (", list,
              "); does config.json (block_out_channels, layers_per_block ", s.layers_per_block,
              ", mid_block_add_attention ", s.mid_block_add_attention ? "true" : "false", ") match the checkpoint?");
  }
  return std::unique_ptr<VaeDecoder>(new VaeDecoder(std::move(impl)));
}

Tensor VaeDecoder::scale_latents(const Tensor& latents) const {
  OMNI_CHECK(latents.defined() && latents.device().is_cpu(), "VAE scale_latents: expected a host tensor");
  Tensor z = latents.to(DType::F32).clone();
  const float scale = static_cast<float>(impl_->spec.scaling_factor);
  const float shift = static_cast<float>(impl_->spec.shift_factor);
  float* p = z.data<float>();
  for (int64_t i = 0; i < z.numel(); ++i) p[i] = p[i] / scale + shift;  // a division, as torch computes it
  return z;
}

Tensor VaeDecoder::decode(const Tensor& z, VaeTrace* trace) {
  Impl& m = *impl_;
  const VaeDecoderSpec& s = m.spec;
  OMNI_CHECK(z.defined() && z.device().is_cpu() && z.ndim() == 4 && z.dim(1) == s.latent_channels && z.numel() > 0,
             "VAE decode: latents expected a host tensor [B, ", s.latent_channels, ", h, w], found ",
             z.defined() ? shape_str(z.shape()) : std::string("an undefined tensor"));
  Backend& be = m.backend;
  Tensor x = m.conv(m.conv_in, be.upload(z.to(be.activation_dtype())));
  if (trace) trace->conv_in = be.download(x);
  x = m.resnet(m.mid_resnet0, x);
  if (m.mid_attention) x = m.attention(*m.mid_attention, x);
  x = m.resnet(m.mid_resnet1, x);
  if (trace) trace->mid_block = be.download(x);
  for (const UpBlock& b : m.up_blocks) {
    for (const Resnet& r : b.resnets) x = m.resnet(r, x);
    if (b.upsampler) {
      Tensor up = be.alloc({x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)}, x.dtype());
      be.upsample_nearest2x(up, x);
      x = m.conv(*b.upsampler, up);
    }
    if (trace) trace->up_blocks.push_back(be.download(x));
  }
  return be.download(m.conv(m.conv_out, m.norm_silu(m.norm_out, x)));
}

Tensor image_to_uint8(const Tensor& image) {
  OMNI_CHECK(image.defined() && image.device().is_cpu() && image.ndim() == 4,
             "image_to_uint8: expected a host image [B, C, H, W], found ",
             image.defined() ? shape_str(image.shape()) : std::string("an undefined tensor"));
  const Tensor f = image.to(DType::F32);
  const int64_t B = f.dim(0), C = f.dim(1), H = f.dim(2), W = f.dim(3);
  Tensor out = Tensor::empty({B, H, W, C}, DType::U8);
  const float* src = f.data<float>();
  uint8_t* dst = out.data<uint8_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < H * W; ++i) {
        float v = src[(b * C + c) * H * W + i] * 0.5f + 0.5f;
        v = v > 0.0f ? std::min(v, 1.0f) : 0.0f;  // clamp to [0, 1]; NaN becomes 0
        dst[(b * H * W + i) * C + c] = static_cast<uint8_t>(std::nearbyint(v * 255.0f));  // ties to even
      }
  return out;
}

}  // namespace omni
