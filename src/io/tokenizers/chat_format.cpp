#include "io/tokenizers/chat_format.h"

#include "core/error.h"

namespace omni {

std::string format_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages) {
    // A role with a newline would end the header line early and change what the model sees as the role.
    OMNI_CHECK(!m.role.empty() && m.role.find('\n') == std::string::npos,
               "format_chatml: a message role must be a non-empty single line, found '", m.role, "'");
    out += "<|im_start|>";
    out += m.role;
    out += '\n';
    out += m.content;
    out += "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace omni
