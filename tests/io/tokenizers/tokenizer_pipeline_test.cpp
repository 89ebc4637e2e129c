// The generic tokenizer.json pipeline against HF `tokenizers` run directly (Tokenizer.from_str(...).encode):
// the tiny Unigram under other normalizers (Strip, Replace, NFKC, Lowercase, Prepend), pre-tokenizers (Metaspace
// schemes, every Split behavior, invert), a two-sided template and byte_fallback, and the CLIP tokenizer.json as
// transformers saved it. Fixtures from tools/make_clip_t5_tokenizer_fixtures.py (pipeline_variants.json).
#include "io/tokenizers/tokenizer_pipeline.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer_test_util.h"

namespace omni {
namespace {

using namespace tokenizer_test;

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/data/tokenizers";

TEST(TokenizerPipeline, MatchesHuggingFaceTokenizersOnVariants) {
  const nlohmann::json variants = nlohmann::json::parse(read_file(kDir + "/pipeline_variants.json"));
  ASSERT_GE(variants.size(), 12u);
  for (const nlohmann::json& v : variants) {
    const std::string name = v["name"];
    nlohmann::json root = nlohmann::json::parse(read_file(kDir + "/" + v["base"].get<std::string>()));
    for (const auto& [key, value] : v["override"].items()) root[key] = value;
    const TokenizerPipeline pipeline = TokenizerPipeline::from_json(root, "variant " + name);
    int mismatches = 0;
    for (const nlohmann::json& c : v["cases"]) {
      const std::string text = c["text"];
      const auto want = c["ids"].get<std::vector<int32_t>>();
      const auto got = pipeline.encode_with_specials(text);
      if (got != want && ++mismatches <= 5)
        ADD_FAILURE() << name << ": text " << printable(text) << "\n  want " << nlohmann::json(want).dump()
                      << "\n  got  " << nlohmann::json(got).dump();
    }
    EXPECT_EQ(mismatches, 0) << name;
  }
}

TEST(TokenizerPipeline, UnsupportedStepsAreRefusedNamingTheField) {
  nlohmann::json root = nlohmann::json::parse(read_file(kDir + "/t5/tiny_valid/tokenizer.json"));
  const auto expect_error = [&](const nlohmann::json& r, const std::string& must_contain) {
    try {
      TokenizerPipeline::from_json(r, "mem/tokenizer.json");
      ADD_FAILURE() << "accepted: " << must_contain;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("mem/tokenizer.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(must_contain), std::string::npos) << e.what();
    }
  };
  nlohmann::json r = root;
  r["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error(r, "normalizer.type");
  r = root;
  r["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}}}}};
  expect_error(r, "pre_tokenizer.pretokenizers[0].type");
  r = root;
  r["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "WhitespaceSplit"}}}}};
  expect_error(r, "ByteLevel must be the last");
  r = root;
  r["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "ab"}};
  expect_error(r, "replacement");
  r = root;
  r["post_processor"] = {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<x>"}}}}}},
                         {"special_tokens", nlohmann::json::object()}};
  expect_error(r, "post_processor.single[0]");
  r = root;
  r["model"]["unk_id"] = 100000;
  expect_error(r, "model.unk_id");
}

}  // namespace
}  // namespace omni
