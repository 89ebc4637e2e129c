// AutoRound calibration of a FLUX transformer (../shared/docs/reference/autoround.md §3): captions, one a line,
// are encoded by the pipeline's own text encoders and run through its denoising loop at a small calibration size;
// the first double block's inputs of every step (image and text tokens, temb, rotary tables) are kept as the
// block-0 samples, one per (caption, step), as auto-round caches every denoising step's block inputs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "nn/block.h"

namespace omni {

class FluxTextToImage;

// Defaults (AutoRound for a pipeline folder, docs/cli.md): 256 × 256 px is 256 image tokens, small enough that
// 32 captions × 4 steps = 128 cached samples (the text quantizer's default sample count) fit in a few GB at
// FLUX.1-dev's width, yet the rotary grid and the adaLN inputs are the model's own. Four steps visit the
// schedule from pure noise (σ = 1) to nearly clean latents, the range the transformer sees at generation.
struct FluxCalibrationOptions {
  int64_t width = 256, height = 256;
  int64_t steps = 4;
  float guidance = 3.5f;               // the distilled guidance embedding (FLUX.1-dev's default)
  uint64_t seed = 42;                  // caption i starts from the noise of seed + i
  int64_t max_sequence_length = 512;   // T5 tokens (FLUX.1-dev 512, schnell 256)
};

// The captions of a calibration file: one a line, surrounding whitespace trimmed, blank lines skipped. Errors
// name the file when it is missing, unreadable or holds no caption.
std::vector<std::string> read_caption_file(const std::string& path);

// "WxH" (or "N" for N × N) in pixels; `option` names the flag in errors.
std::pair<int64_t, int64_t> parse_image_size(const std::string& text, const std::string& option);

// Block 0's inputs for every (caption, step), on the host as F32, sample k = caption · steps + step:
// "img" [n, Ni, D], "txt" [n, Nt, D], "temb" [n, D], "rope_cos", "rope_sin" [n, L, hd] (L = Nt + Ni).
// `backend` is the one t2i was opened on. on_caption(i, n) after each caption (may be empty).
NamedTensors capture_flux_calibration(FluxTextToImage& t2i, Backend& backend, const std::vector<std::string>& captions,
                                      const FluxCalibrationOptions& options,
                                      const std::function<void(int64_t, int64_t)>& on_caption = {});

}  // namespace omni
