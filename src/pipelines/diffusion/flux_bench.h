// `omniround bench flux`: the FLUX transformer's forward time at full size, from random weights of FLUX.1-dev's
// shapes (or a real checkpoint's config) in BF16 and in W4A16 — the weights' memory, the seconds per forward, the
// throughput against the FLOPs of a forward, and batched against sequential CFG (one forward of batch 2 against
// two of batch 1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "nn/flux_spec.h"

namespace omni {

struct FluxBenchOptions {
  FluxSpec spec;                  // FLUX.1-dev by default
  int64_t width = 1024, height = 1024;
  int64_t text_tokens = 512;      // T5 sequence length
  int64_t vae_scale_factor = 8;   // image pixels per latent pixel (FLUX's VAE)
  int repeats = 3;                // timed forwards, after one untimed warm-up
  bool cfg_compare = false;       // also time batch 2 against two batch-1 forwards
  bool vae = false;               // also time the VAE decode of one image (FLUX's AutoencoderKL, random weights)
  uint64_t seed = 0;
};

struct FluxBenchRun {
  std::string weights;            // "bf16" or "w4a16"
  std::string layouts;            // how the backend holds the Linears
  int64_t linear_weight_bytes = 0;
  double load_seconds = 0;
  std::vector<double> forward_seconds;          // batch 1, one per repeat
  std::vector<double> batch2_forward_seconds;   // with cfg_compare
  std::vector<double> vae_decode_seconds;       // with vae
  uint64_t device_peak_bytes = 0;               // 0 on a host backend
};

// Image and text tokens, and the FLOPs of one batch-1 forward: 2 per multiply-add of every Linear on the tokens it
// reads, plus 4·L²·D per block for the attention's two products (74.4 TFLOP for FLUX.1-dev at 1024², 512 text tokens).
int64_t flux_image_tokens(const FluxBenchOptions& o);
double flux_forward_flops(const FluxBenchOptions& o);

// Loads random weights (w4a16: the blocks' Linears 4-bit, group 128, as a quantized checkpoint) and times forwards.
FluxBenchRun bench_flux_transformer(Backend& backend, const FluxBenchOptions& options, bool w4a16);

double median_of(std::vector<double> v);

}  // namespace omni
