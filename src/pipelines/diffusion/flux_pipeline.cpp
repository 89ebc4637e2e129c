#include "pipelines/diffusion/flux_pipeline.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/rng.h"
#include "io/json_fields.h"
#include "models/flux/flux.h"
#include "models/flux/flux_latents.h"
#include "models/vae/autoencoder_kl.h"
#include "nn/flux_transformer.h"
#include "nn/vae_decoder.h"

namespace omni {
namespace fs = std::filesystem;
namespace {

Tensor f32(const Tensor& t) { return t.dtype() == DType::F32 ? t : t.to(DType::F32); }

// [n] tensors of one shape stacked along a new leading axis (host F32).
Tensor stack(const std::vector<Tensor>& parts) {
  Shape shape = parts[0].shape();
  shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
  Tensor out = Tensor::empty(shape, DType::F32);
  const int64_t n = parts[0].numel();
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor p = f32(parts[i]);
    OMNI_CHECK(p.numel() == n, "FLUX pipeline: the prompts' encoder outputs differ in shape (",
               shape_str(parts[0].shape()), " and ", shape_str(parts[i].shape()), ")");
    std::memcpy(out.data<float>() + static_cast<int64_t>(i) * n, p.data<float>(), static_cast<size_t>(n) * 4);
  }
  return out;
}

Tensor rows_of(const Tensor& batch, int64_t b) {  // sample b of [B, ...] as [1, ...]
  Shape shape = batch.shape();
  const int64_t n = batch.numel() / shape[0];
  shape[0] = 1;
  Tensor out = Tensor::empty(shape, DType::F32);
  std::memcpy(out.data<float>(), batch.data<float>() + b * n, static_cast<size_t>(n) * 4);
  return out;
}

void check_component(const std::string& dir, const char* name) {
  OMNI_CHECK(fs::is_directory(fs::path(dir) / name), dir, ": the pipeline folder has no ", name, "/ component");
}

}  // namespace

CfgMode parse_cfg_mode(const std::string& name) {
  if (name == "sequential") return CfgMode::Sequential;
  if (name == "batched") return CfgMode::Batched;
  OMNI_FAIL("unknown --cfg \"", name, "\" (expected sequential or batched)");
}

const char* cfg_mode_name(CfgMode mode) { return mode == CfgMode::Batched ? "batched" : "sequential"; }

struct FluxPipeline::Impl {
  std::unique_ptr<FluxTransformer> transformer;
  std::unique_ptr<VaeDecoder> vae;
  FlowMatchEulerConfig scheduler;

  // The velocities of the conditional and (with CFG) unconditional branch at one step: the one place a two-GPU
  // split would change. Returns [1, Ni, C] per branch.
  std::vector<Tensor> velocities(const FluxSampling& s, const std::vector<const FluxPromptEmbeds*>& branches,
                                 const Tensor& latents, float timestep, const Tensor& img_ids, const Tensor& txt_ids) {
    auto inputs_for = [&](const std::vector<const FluxPromptEmbeds*>& bs) {
      FluxInputs in;
      std::vector<Tensor> hs, seq, pooled;
      for (const FluxPromptEmbeds* b : bs) {
        hs.push_back(latents.view({latents.dim(1), latents.dim(2)}));
        seq.push_back(b->sequence);
        pooled.push_back(b->pooled);
      }
      in.hidden_states = stack(hs);
      in.encoder_hidden_states = stack(seq);
      in.pooled_projections = stack(pooled);
      in.timestep.assign(bs.size(), timestep);
      if (transformer->spec().guidance_embeds) in.guidance.assign(bs.size(), s.guidance);
      in.img_ids = img_ids;
      in.txt_ids = txt_ids;
      return in;
    };
    std::vector<Tensor> out;
    if (s.cfg == CfgMode::Batched && branches.size() > 1) {
      const Tensor v = transformer->forward(inputs_for(branches));
      for (size_t b = 0; b < branches.size(); ++b) out.push_back(rows_of(v, static_cast<int64_t>(b)));
    } else {
      for (const FluxPromptEmbeds* b : branches) out.push_back(transformer->forward(inputs_for({b})));
    }
    return out;
  }
};

FluxPipeline::FluxPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FluxPipeline::~FluxPipeline() = default;
FluxTransformer& FluxPipeline::transformer() { return *impl_->transformer; }
VaeDecoder& FluxPipeline::vae() { return *impl_->vae; }
const FlowMatchEulerConfig& FluxPipeline::scheduler_config() const { return impl_->scheduler; }

std::unique_ptr<FluxPipeline> FluxPipeline::open(const std::string& dir, Backend& backend) {
  const std::string index = (fs::path(dir) / "model_index.json").string();
  OMNI_CHECK(fs::is_regular_file(index), dir, ": not a diffusers pipeline folder (no model_index.json)");
  const nlohmann::json j = read_json_file(index);
  OMNI_CHECK(j.is_object(), index, ": expected a JSON object");
  const std::string cls = j.contains("_class_name") && j["_class_name"].is_string() ? j["_class_name"].get<std::string>() : "";
  OMNI_CHECK(cls.empty() || cls == "FluxPipeline", index, ": field \"_class_name\" is \"", cls,
             "\"; only FluxPipeline is supported");
  for (const char* c : {"transformer", "vae", "scheduler"}) check_component(dir, c);
  auto impl = std::make_unique<Impl>();
  impl->scheduler = read_flow_match_euler_config((fs::path(dir) / "scheduler").string());
  impl->transformer = open_flux_transformer((fs::path(dir) / "transformer").string(), backend);
  impl->vae = open_vae_decoder((fs::path(dir) / "vae").string(), backend);
  OMNI_CHECK(impl->vae->spec().latent_channels * 4 == impl->transformer->spec().in_channels, dir,
             ": the VAE's latent_channels (", impl->vae->spec().latent_channels,
             ") do not fill the transformer's in_channels (", impl->transformer->spec().in_channels, ") as 2x2 patches");
  return std::unique_ptr<FluxPipeline>(new FluxPipeline(std::move(impl)));
}

void FluxPipeline::check(const FluxSampling& s, bool has_negative) const {
  const int64_t f = 2 * impl_->vae->spec().scale_factor();
  OMNI_CHECK(s.width > 0 && s.height > 0 && s.width % f == 0 && s.height % f == 0, "--size ", s.width, "x", s.height,
             ": width and height must be positive multiples of ", f);
  OMNI_CHECK(s.width <= 8192 && s.height <= 8192, "--size ", s.width, "x", s.height, ": at most 8192 per side");
  OMNI_CHECK(s.steps >= 1 && s.steps <= 1000, "--steps ", s.steps, ": expected 1 to 1000");
  OMNI_CHECK(std::isfinite(s.guidance) && std::isfinite(s.true_cfg_scale), "--guidance and --true-cfg-scale must be finite");
  OMNI_CHECK(s.true_cfg_scale <= 1.0f || has_negative,
             "--true-cfg-scale > 1 needs a negative prompt (true CFG runs the unconditional branch on it)");
}

std::pair<int64_t, int64_t> FluxPipeline::latent_size(const FluxSampling& s) const {
  const int64_t f = impl_->vae->spec().scale_factor();
  return {flux_latent_size(s.height, f), flux_latent_size(s.width, f)};
}

Tensor FluxPipeline::noise(const FluxSampling& s) const {
  const auto [h, w] = latent_size(s);
  Tensor out = Tensor::empty({1, impl_->vae->spec().latent_channels, h, w}, DType::F32);
  SplitMix64 rng(s.seed);
  float* p = out.data<float>();
  const int64_t n = out.numel();
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(rng.next() >> 11) + 1.0) / 9007199254740992.0;
    const double u2 = static_cast<double>(rng.next() >> 11) / 9007199254740992.0;
    const double r = std::sqrt(-2.0 * std::log(u1));
    p[i] = static_cast<float>(r * std::cos(kTwoPi * u2));
    if (i + 1 < n) p[i + 1] = static_cast<float>(r * std::sin(kTwoPi * u2));
  }
  return out;
}

Tensor FluxPipeline::denoise(const FluxSampling& s, const FluxPromptEmbeds& prompt, const FluxPromptEmbeds* negative,
                             Tensor packed, std::vector<Tensor>* trace,
                             const std::function<void(const FluxStepInfo&)>& on_step) {
  check(s, negative != nullptr);
  const auto [h, w] = latent_size(s);
  const int64_t Ni = (h / 2) * (w / 2);
  OMNI_CHECK(packed.ndim() == 3 && packed.dim(0) == 1 && packed.dim(1) == Ni &&
                 packed.dim(2) == impl_->transformer->spec().in_channels,
             "FLUX pipeline: packed latents expected [1, ", Ni, ", ", impl_->transformer->spec().in_channels,
             "] for ", s.width, "x", s.height, ", found ", shape_str(packed.shape()));
  const Tensor given = f32(packed);
  Tensor latents = Tensor::empty(given.shape(), DType::F32);  // a private copy, stepped in place
  std::memcpy(latents.data<float>(), given.data<float>(), given.nbytes());
  const int64_t Nt = prompt.sequence.dim(0);
  const Tensor img_ids = flux_latent_image_ids(h, w);
  Tensor txt_ids = Tensor::zeros({Nt, 3}, DType::F32);
  FlowMatchEulerScheduler scheduler(impl_->scheduler);
  scheduler.set_timesteps(s.steps, Ni);
  const bool cfg = s.true_cfg_scale > 1.0f && negative != nullptr;
  std::vector<const FluxPromptEmbeds*> branches{&prompt};
  if (cfg) branches.push_back(negative);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < scheduler.num_steps(); ++i) {
    const float t = scheduler.timesteps()[static_cast<size_t>(i)] / 1000.0f;
    std::vector<Tensor> v = impl_->velocities(s, branches, latents, t, img_ids, txt_ids);
    Tensor velocity = v[0];
    if (cfg) {  // v = v_neg + scale · (v − v_neg)
      float* a = velocity.data<float>();
      const float* n = v[1].data<float>();
      for (int64_t k = 0; k < velocity.numel(); ++k) a[k] = n[k] + s.true_cfg_scale * (a[k] - n[k]);
    }
    scheduler.step(i, latents, velocity);
    if (trace) {
      Tensor copy = Tensor::empty(latents.shape(), DType::F32);
      std::memcpy(copy.data<float>(), latents.data<float>(), latents.nbytes());
      trace->push_back(copy);
    }
    if (on_step)
      on_step({i + 1, scheduler.num_steps(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
  }
  return latents;
}

RgbImage FluxPipeline::decode(const FluxSampling& s, const Tensor& packed) {
  const auto [h, w] = latent_size(s);
  const Tensor z = impl_->vae->scale_latents(unpack_flux_latents(f32(packed), h, w));
  const Tensor u8 = image_to_uint8(impl_->vae->decode(z));  // [1, H, W, C]
  OMNI_CHECK(u8.dim(3) == 3, "FLUX pipeline: the VAE makes ", u8.dim(3), " channels; PNG output needs 3 (RGB)");
  RgbImage img{u8.dim(2), u8.dim(1), std::vector<uint8_t>(u8.data<uint8_t>(), u8.data<uint8_t>() + u8.numel())};
  return img;
}

}  // namespace omni
