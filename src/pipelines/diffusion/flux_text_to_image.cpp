#include "pipelines/diffusion/flux_text_to_image.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "io/tokenizers/clip_tokenizer.h"
#include "io/tokenizers/t5_tokenizer.h"
#include "models/flux/flux_latents.h"
#include "models/text_encoders/text_encoders.h"
#include "nn/clip_text_encoder.h"
#include "nn/flux_transformer.h"
#include "nn/t5_encoder.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Tensor ids_tensor(const std::vector<int32_t>& ids) {
  Tensor t = Tensor::empty({1, static_cast<int64_t>(ids.size())}, DType::I32);
  std::copy(ids.begin(), ids.end(), t.data<int32_t>());
  return t;
}

}  // namespace

struct FluxTextToImage::Impl {
  std::string dir;
  ClipTokenizer clip_tokenizer;
  T5Tokenizer t5_tokenizer;
  std::unique_ptr<FluxPipeline> pipeline;
  std::unique_ptr<ClipTextEncoder> clip;
  std::unique_ptr<T5Encoder> t5;
};

FluxTextToImage::FluxTextToImage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FluxTextToImage::~FluxTextToImage() = default;
FluxPipeline& FluxTextToImage::pipeline() { return *impl_->pipeline; }

std::unique_ptr<FluxTextToImage> FluxTextToImage::open(const std::string& dir, Backend& backend) {
  for (const char* c : {"text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"})
    OMNI_CHECK(fs::is_directory(fs::path(dir) / c), dir, ": the pipeline folder has no ", c,
               "/ component (text to image needs both text encoders and both tokenizers)");
  auto impl = std::unique_ptr<Impl>(new Impl{dir, ClipTokenizer::from_dir((fs::path(dir) / "tokenizer").string()),
                                              T5Tokenizer::from_dir((fs::path(dir) / "tokenizer_2").string()),
                                              nullptr, nullptr, nullptr});
  impl->pipeline = FluxPipeline::open(dir, backend);
  impl->clip = open_clip_text_encoder((fs::path(dir) / "text_encoder").string(), backend);
  impl->t5 = open_t5_encoder((fs::path(dir) / "text_encoder_2").string(), backend);
  const FluxSpec& ts = impl->pipeline->transformer().spec();
  OMNI_CHECK(impl->clip->spec().hidden_size == ts.pooled_projection_dim, dir, ": text_encoder's hidden_size (",
             impl->clip->spec().hidden_size, ") is not the transformer's pooled_projection_dim (",
             ts.pooled_projection_dim, ")");
  OMNI_CHECK(impl->t5->spec().d_model == ts.joint_attention_dim, dir, ": text_encoder_2's d_model (",
             impl->t5->spec().d_model, ") is not the transformer's joint_attention_dim (", ts.joint_attention_dim, ")");
  return std::unique_ptr<FluxTextToImage>(new FluxTextToImage(std::move(impl)));
}

FluxPromptEmbeds FluxTextToImage::encode(const std::string& prompt, int64_t max_sequence_length,
                                         FluxImageResult* counts) {
  Impl& m = *impl_;
  OMNI_CHECK(max_sequence_length >= 1 && max_sequence_length <= 4096, "--max-sequence-length ", max_sequence_length,
             ": expected 1 to 4096");
  const PaddedIds t5_ids = m.t5_tokenizer.encode_padded(prompt, static_cast<size_t>(max_sequence_length));
  OMNI_CHECK(!t5_ids.truncated(), "the prompt has ", t5_ids.length, " T5 tokens (with </s>); the text encoder takes ",
             max_sequence_length, " (--max-sequence-length): shorten the prompt or raise the limit");
  const size_t clip_len = static_cast<size_t>(m.clip->spec().max_position_embeddings);
  const PaddedIds clip_ids = m.clip_tokenizer.encode_padded(prompt, std::min(clip_len, m.clip_tokenizer.max_length()));
  if (counts) {
    counts->prompt_t5_tokens = static_cast<int64_t>(t5_ids.length);
    counts->prompt_clip_tokens = static_cast<int64_t>(clip_ids.length);
    counts->clip_truncated = clip_ids.truncated();
  }
  FluxPromptEmbeds out;
  const ClipTextOutput clip = m.clip->forward(ids_tensor(clip_ids.ids));
  out.pooled = clip.pooler_output.view({clip.pooler_output.dim(1)});
  const Tensor seq = m.t5->forward(ids_tensor(t5_ids.ids));
  out.sequence = seq.view({seq.dim(1), seq.dim(2)});
  return out;
}

FluxImageResult FluxTextToImage::generate(const FluxImageRequest& r,
                                          const std::function<void(const FluxStepInfo&)>& on_step) {
  FluxPipeline& pipe = *impl_->pipeline;
  const bool cfg = r.sampling.true_cfg_scale > 1.0f;
  pipe.check(r.sampling, cfg);
  FluxImageResult result;
  auto t0 = std::chrono::steady_clock::now();
  const FluxPromptEmbeds prompt = encode(r.prompt, r.max_sequence_length, &result);
  FluxPromptEmbeds negative;
  if (cfg) negative = encode(r.negative_prompt, r.max_sequence_length);
  result.encode_seconds = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  const Tensor latents =
      pipe.denoise(r.sampling, prompt, cfg ? &negative : nullptr, pack_flux_latents(pipe.noise(r.sampling)), nullptr, on_step);
  result.denoise_seconds = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  result.image = pipe.decode(r.sampling, latents);
  result.decode_seconds = seconds_since(t0);
  return result;
}

}  // namespace omni
