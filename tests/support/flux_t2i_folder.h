// The whole tiny FLUX pipeline folder of tools/make_flux_text_to_image_golden.py, assembled from the fixtures it
// names (transformer, VAE, scheduler, both tokenizers, both text encoders), so no fixture is stored twice.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

namespace omni::testing_support {

inline const std::string kFluxT2iGolden = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/tiny-t2i/golden.safetensors";

// Writes the folder at `dst` (replacing it) and returns dst.
inline std::string assemble_flux_t2i_folder(const std::string& dst) {
  namespace fs = std::filesystem;
  const std::string data = std::string(OMNI_SOURCE_DIR) + "/tests/data/";
  fs::remove_all(dst);
  fs::create_directories(dst);
  const std::pair<const char*, std::string> parts[] = {
      {"transformer", data + "flux/tiny-pipeline/transformer"}, {"vae", data + "flux/pipeline/vae"},
      {"scheduler", data + "flux/pipeline/scheduler"},          {"tokenizer", data + "tokenizers/clip/vocab_merges"},
      {"text_encoder", data + "flux/tiny-t2i/text_encoder"},    {"text_encoder_2", data + "flux/tiny-t2i/text_encoder_2"}};
  for (const auto& [name, src] : parts) fs::copy(src, dst + "/" + name, fs::copy_options::recursive);
  fs::create_directories(dst + "/tokenizer_2");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(data + "tokenizers/t5/" + f, dst + "/tokenizer_2/" + f);
  std::ofstream(dst + "/model_index.json")
      << R"({"_class_name": "FluxPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],)"
      << R"( "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],)"
      << R"( "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5TokenizerFast"],)"
      << R"( "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]})";
  return dst;
}

}  // namespace omni::testing_support
