#include "pipelines/diffusion/flux_bench.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/rng.h"
#include "models/flux/flux_latents.h"
#include "nn/flux_transformer.h"
#include "nn/vae_decoder.h"
#include "pipelines/backend_choice.h"

namespace omni {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Tensor random_f32(const Shape& shape, SplitMix64& rng) {
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = static_cast<float>(rng.next() >> 40) * (2.0f / 16777216.0f) - 1.0f;
  return t;
}

FluxInputs random_inputs(const FluxBenchOptions& o, int64_t batch) {
  const FluxSpec& s = o.spec;
  SplitMix64 rng(o.seed + 1);
  const int64_t h = flux_latent_size(o.height, o.vae_scale_factor), w = flux_latent_size(o.width, o.vae_scale_factor);
  FluxInputs in;
  in.hidden_states = random_f32({batch, (h / 2) * (w / 2), s.in_channels}, rng);
  in.encoder_hidden_states = random_f32({batch, o.text_tokens, s.joint_attention_dim}, rng);
  in.pooled_projections = random_f32({batch, s.pooled_projection_dim}, rng);
  in.timestep.assign(static_cast<size_t>(batch), 0.5f);
  if (s.guidance_embeds) in.guidance.assign(static_cast<size_t>(batch), 3.5f);
  in.img_ids = flux_latent_image_ids(h, w);
  in.txt_ids = Tensor::zeros({o.text_tokens, 3}, DType::F32);
  return in;
}

std::vector<double> time_forwards(FluxTransformer& t, Backend& be, const FluxInputs& in, int repeats) {
  t.forward(in);  // warm-up: first-use allocations, cuBLAS plans
  be.synchronize();
  std::vector<double> out;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now_seconds();
    t.forward(in);  // returns the velocity on the host: the forward has finished
    out.push_back(now_seconds() - t0);
  }
  return out;
}

}  // namespace

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int64_t flux_image_tokens(const FluxBenchOptions& o) {
  const int64_t h = flux_latent_size(o.height, o.vae_scale_factor), w = flux_latent_size(o.width, o.vae_scale_factor);
  return (h / 2) * (w / 2);
}

double flux_forward_flops(const FluxBenchOptions& o) {
  const FluxSpec& s = o.spec;
  const double D = static_cast<double>(s.inner_dim()), Ni = static_cast<double>(flux_image_tokens(o)),
               Nt = static_cast<double>(o.text_tokens), L = Ni + Nt, M = static_cast<double>(s.mlp_dim());
  // Per token: a double block's stream reads q, k, v, out (4 D²) and the MLP (2 D·M); a single block reads q, k, v
  // (3 D²), the MLP's input (D·M) and proj_out ((D + M)·D).
  const double per_double = 4 * D * D + 2 * D * M, per_single = 3 * D * D + D * M + (D + M) * D;
  const double linears = 2 * L * (per_double * static_cast<double>(s.num_layers) + per_single * static_cast<double>(s.num_single_layers));
  const double attention = 4 * L * L * D * static_cast<double>(s.num_layers + s.num_single_layers);
  return linears + attention;
}

FluxBenchRun bench_flux_transformer(Backend& be, const FluxBenchOptions& o, bool w4a16) {
  OMNI_CHECK(o.width % (2 * o.vae_scale_factor) == 0 && o.height % (2 * o.vae_scale_factor) == 0 && o.width > 0 &&
                 o.height > 0,
             "--size ", o.width, "x", o.height, ": width and height must be positive multiples of ", 2 * o.vae_scale_factor);
  OMNI_CHECK(o.text_tokens >= 1 && o.text_tokens <= 4096, "--text-tokens ", o.text_tokens, ": expected 1 to 4096");
  OMNI_CHECK(o.repeats >= 1 && o.repeats <= 1000, "--repeat ", o.repeats, ": expected 1 to 1000");
  FluxBenchRun run;
  run.weights = w4a16 ? "w4a16" : "bf16";
  const double t0 = now_seconds();
  std::unique_ptr<FluxTransformer> t = FluxTransformer::random(o.spec, be, o.seed, w4a16);
  be.synchronize();
  run.load_seconds = now_seconds() - t0;
  run.layouts = t->load_report().layouts_summary();
  run.linear_weight_bytes = t->load_report().linear_weight_bytes;
  run.forward_seconds = time_forwards(*t, be, random_inputs(o, 1), o.repeats);
  if (o.cfg_compare) run.batch2_forward_seconds = time_forwards(*t, be, random_inputs(o, 2), o.repeats);
  if (o.vae) {
    t.reset();  // the decoder runs after the denoising loop, not beside it
    VaeDecoderSpec vs;  // FLUX's
    OMNI_CHECK(vs.scale_factor() == o.vae_scale_factor, "bench flux: the VAE's scale factor ", vs.scale_factor(),
               " is not the benchmark's ", o.vae_scale_factor);
    std::unique_ptr<VaeDecoder> vae = VaeDecoder::random(vs, be, o.seed);
    SplitMix64 rng(o.seed + 2);
    const Tensor z = random_f32({1, vs.latent_channels, flux_latent_size(o.height, o.vae_scale_factor),
                                 flux_latent_size(o.width, o.vae_scale_factor)}, rng);
    vae->decode(z);  // warm-up
    for (int r = 0; r < o.repeats; ++r) {
      const double v0 = now_seconds();
      vae->decode(z);  // returns the image on the host
      run.vae_decode_seconds.push_back(now_seconds() - v0);
    }
  }
  run.device_peak_bytes = device_memory_peak_bytes(be).value_or(0);
  return run;
}

}  // namespace omni
