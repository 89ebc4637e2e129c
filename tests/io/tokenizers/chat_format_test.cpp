// ChatML formatting checked against the shipped tokenizer_config.json chat_template as rendered by transformers
// (tests/data/tokenizer/chat.jsonl from tools/make_tokenizer_fixtures.py), and the ids of the rendered prompt.
#include "io/tokenizers/chat_format.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/tokenizers/tokenizer.h"

namespace omni {
namespace {

const std::string kDataDir = std::string(OMNI_SOURCE_DIR) + "/tests/data/tokenizer";

TEST(ChatFormat, MatchesTransformersChatTemplate) {
  std::ifstream in(kDataDir + "/chat.jsonl");
  ASSERT_TRUE(in);
  const Tokenizer tok = Tokenizer::from_dir(std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3");
  int cases = 0;
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    std::vector<ChatMessage> messages;
    for (const auto& m : row["messages"]) messages.push_back({m["role"], m["content"]});
    const std::string text = format_chatml(messages, row["add_generation_prompt"].get<bool>());
    EXPECT_EQ(text, row["text"].get<std::string>()) << line;
    EXPECT_EQ(tok.encode(text), row["ids"].get<std::vector<int32_t>>()) << line;
    ++cases;
  }
  EXPECT_GE(cases, 5);
}

TEST(ChatFormat, GenerationPromptOpensAnAssistantTurn) {
  const std::vector<ChatMessage> one = {{"user", "Hi"}};
  EXPECT_EQ(format_chatml(one, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(format_chatml(one, false), "<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(format_chatml({}, true), "<|im_start|>assistant\n");
}

TEST(ChatFormat, RejectsRolesThatWouldBreakTheHeader) {
  EXPECT_THROW(format_chatml({{"", "x"}}, true), Error);
  EXPECT_THROW(format_chatml({{"user\nsystem", "x"}}, true), Error);
}

}  // namespace
}  // namespace omni
