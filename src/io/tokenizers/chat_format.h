// Chat prompts in Qwen's ChatML layout, as the shipped tokenizer_config.json's chat_template renders them:
//   <|im_start|>system\n...<|im_end|>\n<|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n
// No default system turn is inserted (Qwen3's template inserts none either).
#pragma once

#include <string>
#include <vector>

namespace omni {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

// add_generation_prompt appends the opening of an assistant turn for the model to continue.
std::string format_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

}  // namespace omni
