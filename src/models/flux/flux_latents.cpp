#include "models/flux/flux_latents.h"

#include "core/error.h"

namespace omni {
namespace {

void check_even(int64_t h, int64_t w, const char* what) {
  OMNI_CHECK(h > 0 && w > 0 && h % 2 == 0 && w % 2 == 0, what, ": the latent height and width must be positive and "
             "even (2x2 patches), found ", h, " x ", w);
}

// Calls f(b, c, y, x, t, k) for every latent element: (b, c, y, x) of [B, C, h, w] and its place (b, t, k) in
// the packed [B, (h/2)(w/2), 4C].
template <typename F>
void for_each_patch_element(int64_t B, int64_t C, int64_t h, int64_t w, F f) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) f(b, c, y, x, (y / 2) * (w / 2) + x / 2, c * 4 + (y % 2) * 2 + x % 2);
}

}  // namespace

int64_t flux_latent_size(int64_t pixels, int64_t vae_scale_factor) {
  OMNI_CHECK(pixels > 0 && vae_scale_factor > 0, "FLUX latent size: pixels (", pixels, ") and the VAE scale factor (",
             vae_scale_factor, ") must be positive");
  const int64_t n = 2 * (pixels / (2 * vae_scale_factor));
  OMNI_CHECK(n > 0, "FLUX latent size: an image of ", pixels, " pixels is smaller than one 2x2 patch of latents (",
             2 * vae_scale_factor, " pixels)");
  return n;
}

Tensor pack_flux_latents(const Tensor& latents) {
  OMNI_CHECK(latents.defined() && latents.device().is_cpu() && latents.ndim() == 4,
             "pack_flux_latents: expected host latents [B, C, h, w], found ",
             latents.defined() ? shape_str(latents.shape()) : std::string("an undefined tensor"));
  const int64_t B = latents.dim(0), C = latents.dim(1), h = latents.dim(2), w = latents.dim(3);
  check_even(h, w, "pack_flux_latents");
  const Tensor in = latents.to(DType::F32);
  const int64_t T = (h / 2) * (w / 2);
  Tensor out = Tensor::empty({B, T, 4 * C}, DType::F32);
  const float* src = in.data<float>();
  float* dst = out.data<float>();
  for_each_patch_element(B, C, h, w, [&](int64_t b, int64_t c, int64_t y, int64_t x, int64_t t, int64_t k) {
    dst[(b * T + t) * 4 * C + k] = src[((b * C + c) * h + y) * w + x];
  });
  return out;
}

Tensor unpack_flux_latents(const Tensor& packed, int64_t h, int64_t w) {
  check_even(h, w, "unpack_flux_latents");
  const int64_t T = (h / 2) * (w / 2);
  OMNI_CHECK(packed.defined() && packed.device().is_cpu() && packed.ndim() == 3 && packed.dim(1) == T &&
                 packed.dim(2) > 0 && packed.dim(2) % 4 == 0,
             "unpack_flux_latents: expected host latents [B, ", T, " tokens (", h, "/2 x ", w,
             "/2), 4 x channels], found ",
             packed.defined() ? shape_str(packed.shape()) : std::string("an undefined tensor"));
  const int64_t B = packed.dim(0), C = packed.dim(2) / 4;
  const Tensor in = packed.to(DType::F32);
  Tensor out = Tensor::empty({B, C, h, w}, DType::F32);
  const float* src = in.data<float>();
  float* dst = out.data<float>();
  for_each_patch_element(B, C, h, w, [&](int64_t b, int64_t c, int64_t y, int64_t x, int64_t t, int64_t k) {
    dst[((b * C + c) * h + y) * w + x] = src[(b * T + t) * 4 * C + k];
  });
  return out;
}

Tensor flux_latent_image_ids(int64_t h, int64_t w) {
  check_even(h, w, "flux_latent_image_ids");
  const int64_t rows = h / 2, cols = w / 2;
  Tensor ids = Tensor::empty({rows * cols, 3}, DType::F32);
  float* p = ids.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float* e = p + (r * cols + c) * 3;
      e[0] = 0.0f;
      e[1] = static_cast<float>(r);
      e[2] = static_cast<float>(c);
    }
  return ids;
}

}  // namespace omni
