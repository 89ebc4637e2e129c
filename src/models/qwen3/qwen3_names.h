// Qwen3 weight names exactly as in Hugging Face checkpoints: the one place that knows them.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace omni::qwen3 {

inline constexpr std::string_view kBlockList = "model.layers";  // block_name_to_quantize
inline constexpr std::string_view kEmbedTokens = "model.embed_tokens.weight";
inline constexpr std::string_view kFinalNorm = "model.norm.weight";
inline constexpr std::string_view kLmHead = "lm_head.weight";

// The Linear layers of one decoder block, relative to the block prefix.
inline constexpr std::array<std::string_view, 7> kBlockLinears = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

inline std::string block_prefix(int64_t layer) { return std::string(kBlockList) + "." + std::to_string(layer); }
inline std::string block_tensor(int64_t layer, std::string_view suffix) {
  return block_prefix(layer) + "." + std::string(suffix);
}

}  // namespace omni::qwen3
