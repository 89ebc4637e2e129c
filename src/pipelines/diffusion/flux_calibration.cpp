#include "pipelines/diffusion/flux_calibration.h"

#include <cstring>

#include "core/error.h"
#include "io/file_util.h"
#include "models/flux/flux_latents.h"
#include "nn/flux_transformer.h"
#include "pipelines/diffusion/flux_text_to_image.h"

namespace omni {
namespace {

std::string trimmed(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n\f\v");
  if (a == std::string::npos) return {};
  return s.substr(a, s.find_last_not_of(" \t\r\n\f\v") - a + 1);
}

// The per-sample layout of each captured tensor: [1, ...] (rope tables arrive as rows [L, hd]).
Shape sample_shape(const std::string& name, const Tensor& t) {
  if (name == "rope_cos" || name == "rope_sin") return {1, t.dim(0), t.dim(1)};
  return t.shape();
}

}  // namespace

std::vector<std::string> read_caption_file(const std::string& path) {
  OMNI_CHECK(file_exists(path), "calibration captions ", path, ": no such file");
  const std::string text = read_text_file(path);
  std::vector<std::string> captions;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    std::string line = trimmed(text.substr(start, end - start));
    if (!line.empty()) captions.push_back(std::move(line));
    start = end + 1;
  }
  OMNI_CHECK(!captions.empty(), "calibration captions ", path, ": the file holds no caption (one a line)");
  return captions;
}

std::pair<int64_t, int64_t> parse_image_size(const std::string& s, const std::string& option) {
  const size_t x = s.find_first_of("xX");
  auto number = [&](const std::string& part) -> int64_t {
    OMNI_CHECK(!part.empty() && part.size() <= 6 && part.find_first_not_of("0123456789") == std::string::npos,
               option, " ", s, ": expected WIDTHxHEIGHT in pixels, e.g. 256x256");
    return std::stoll(part);
  };
  if (x == std::string::npos) {
    const int64_t n = number(s);
    return {n, n};
  }
  return {number(s.substr(0, x)), number(s.substr(x + 1))};
}

NamedTensors capture_flux_calibration(FluxTextToImage& t2i, Backend& backend, const std::vector<std::string>& captions,
                                      const FluxCalibrationOptions& o,
                                      const std::function<void(int64_t, int64_t)>& on_caption) {
  OMNI_CHECK(!captions.empty(), "no calibration captions");
  FluxPipeline& pipe = t2i.pipeline();
  FluxSampling s;
  s.width = o.width;
  s.height = o.height;
  s.steps = o.steps;
  s.guidance = o.guidance;
  pipe.check(s, false);

  const int64_t n = static_cast<int64_t>(captions.size()) * o.steps;
  const char* const names[] = {"img", "txt", "temb", "rope_cos", "rope_sin"};
  NamedTensors all;
  int64_t k = 0;
  auto observe = [&](const NamedTensors& io) {
    OMNI_CHECK(io.at("img").dim(0) == 1, "FLUX calibration: expected a batch of 1 per forward");
    OMNI_CHECK(k < n, "FLUX calibration: the loop ran more forwards than ", o.steps, " steps per caption");
    for (const char* name : names) {
      const Tensor host = backend.download(io.at(name)).to(DType::F32);  // a copy: the buffers are reused
      const Shape shape = sample_shape(name, host);
      if (!all.contains(name)) {
        Shape full = shape;
        full[0] = n;
        all.set(name, Tensor::empty(full, DType::F32));
      }
      Tensor& dst = all.at(name);
      const int64_t per = dst.numel() / n;
      OMNI_CHECK(host.numel() == per, "FLUX calibration: \"", name, "\" of caption ", k / o.steps + 1,
                 " has shape ", shape_str(host.shape()), ", unlike the first caption's");
      std::memcpy(dst.data<float>() + k * per, host.data<float>(), static_cast<size_t>(per) * sizeof(float));
    }
    ++k;
  };
  FluxTransformer& transformer = pipe.transformer();
  transformer.set_block_input_observer(observe);
  struct Unset {  // the observer captures locals: never leave it installed
    FluxTransformer& t;
    ~Unset() { t.set_block_input_observer({}); }
  } unset{transformer};
  for (size_t i = 0; i < captions.size(); ++i) {
    FluxPromptEmbeds prompt;
    try {
      prompt = t2i.encode(captions[i], o.max_sequence_length);
    } catch (const Error&) {
      rethrow_with_context("calibration caption " + std::to_string(i + 1));
    }
    s.seed = o.seed + i;
    pipe.denoise(s, prompt, nullptr, pack_flux_latents(pipe.noise(s)));
    if (on_caption) on_caption(static_cast<int64_t>(i) + 1, static_cast<int64_t>(captions.size()));
  }
  OMNI_CHECK(k == n, "FLUX calibration: captured ", k, " forwards, expected ", n, " (", captions.size(),
             " captions × ", o.steps, " steps)");
  return all;
}

}  // namespace omni
