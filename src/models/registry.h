// The architecture registry: config.json's "architectures" name → how to open the model for inference, for
// quantization and for inspection. Adding an architecture is one folder under models/ and one line in
// registry.cpp; nothing above this layer names an architecture.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "nn/causal_lm.h"
#include "nn/quantizable_model.h"

namespace omni {

// The architecture names this build runs, sorted (for "unsupported architecture" errors).
std::vector<std::string> supported_architectures();

// The architecture `dir/config.json` declares, after checking that this build supports it (errors name the file
// and the field).
std::string model_architecture(const std::string& dir);

// A causal LM on `backend` (which must outlive it).
std::unique_ptr<CausalLM> open_causal_lm(const std::string& dir, Backend& backend);
// The quantizer's view of the model in `dir` (config only; the tuner reads weights block by block).
std::unique_ptr<QuantizableModel> open_quantizable_model(const std::string& dir);
// One line about the model's shape for `inspect`, e.g. "8 layers, hidden 256, ...".
std::string describe_model(const std::string& dir);

// The same two from the text of a config.json, `file` naming it in errors (the fuzzer and tests, which have no
// model directory). The directory versions read config.json and go through the same code.
std::unique_ptr<QuantizableModel> open_quantizable_model_config(std::string_view config_text,
                                                                const std::string& file);
std::string describe_model_config(std::string_view config_text, const std::string& file);

}  // namespace omni
