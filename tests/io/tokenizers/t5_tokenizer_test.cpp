// Golden test of the T5 tokenizer against transformers 5.17's T5Tokenizer (T5TokenizerFast), as FluxPipeline
// calls it (padding="max_length", max_length=max_sequence_length, truncation=True), on a small SentencePiece
// Unigram with nmt_nfkc normalization; plus the Unigram model and the Precompiled charsmap on their own, and
// malformed files. Fixtures from tools/make_clip_t5_tokenizer_fixtures.py.
#include "io/tokenizers/t5_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "io/tokenizers/precompiled_charsmap.h"
#include "io/tokenizers/unigram.h"
#include "tokenizer_test_util.h"

namespace omni {
namespace {

using namespace tokenizer_test;

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/data/tokenizers/t5";

const T5Tokenizer& shipped() {
  static const T5Tokenizer tok = T5Tokenizer::from_dir(kDir);
  return tok;
}

TEST(T5Tokenizer, Loads) {
  const T5Tokenizer& tok = shipped();
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.model_max_length(), 512u);
  EXPECT_EQ(tok.pipeline().token_to_id("<unk>"), 2);
  EXPECT_TRUE(tok.pipeline().token_to_id("<extra_id_0>"));
  EXPECT_EQ(tok.pipeline().suffix_ids(), (std::vector<int32_t>{1}));
  EXPECT_TRUE(tok.pipeline().prefix_ids().empty());
}

TEST(T5Tokenizer, MatchesTransformersOnGoldenCorpus) {
  const auto rows = read_jsonl(kDir + "/expected.jsonl");
  ASSERT_GE(rows.size(), 150u);
  int mismatches = 0;
  size_t truncated = 0, long_rows = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string text = rows[i]["text"];
    const size_t max_length = rows[i]["max_length"];
    const auto want = rows[i]["ids"].get<std::vector<int32_t>>();
    const PaddedIds got = shipped().encode_padded(text, max_length);
    if ((got.ids != want || got.length != rows[i]["length"].get<size_t>()) && ++mismatches <= 10)
      ADD_FAILURE() << "line " << i + 1 << " text " << printable(text) << " max_length " << max_length
                    << "\n  want " << nlohmann::json(want).dump() << " length " << rows[i]["length"]
                    << "\n  got  " << nlohmann::json(got.ids).dump() << " length " << got.length;
    truncated += got.truncated();
    long_rows += max_length == 512;
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GE(truncated, 10u);
  EXPECT_GE(long_rows, 3u);
}

TEST(T5Tokenizer, TruncationKeepsEosLast) {
  std::string prompt;
  for (int i = 0; i < 400; ++i) prompt += "word ";
  const PaddedIds p = shipped().encode_padded(prompt, 256);
  ASSERT_EQ(p.ids.size(), 256u);
  EXPECT_EQ(p.ids.back(), shipped().eos_id());
  EXPECT_TRUE(p.truncated());
  EXPECT_EQ(p.length, shipped().encode(prompt).size());
  EXPECT_THROW(shipped().encode_padded(prompt, 0), Error);
}

TEST(UnigramModel, ViterbiPicksTheBestPathAndFusesUnknowns) {
  // The example of HF's Unigram::encode documentation: "abcdacdxx" -> abcd, a, cd, xx (x unknown, fused).
  const UnigramModel m({{"<unk>", 0}, {"a", 0}, {"b", 0}, {"c", 0}, {"d", 0}, {"cd", 1}, {"ab", 2}, {"abc", 5},
                        {"abcd", 10}},
                       0, false, "mem");
  std::vector<int32_t> ids;
  m.encode("abcdacdxx", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{8, 1, 5, 0}));
  ids.clear();
  m.encode("abcab", ids);  // abc + ab (5 + 2) beats ab + c + ab (2 + 0 + 2)
  EXPECT_EQ(ids, (std::vector<int32_t>{7, 6}));

  const UnigramModel no_unk({{"a", -1}}, std::nullopt, false, "mem");
  EXPECT_THROW(no_unk.encode("ab", ids), Error);

  // byte_fallback: an unknown run becomes its byte pieces when they all exist.
  const UnigramModel fallback({{"<unk>", 0}, {"a", -1}, {"<0x78>", -5}, {"<0xC3>", -5}, {"<0xA9>", -5}}, 0, true,
                              "mem");
  ids.clear();
  fallback.encode("axé", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2, 3, 4}));
  ids.clear();
  fallback.encode("ay", ids);  // no <0x79>: unk
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 0}));
}

TEST(PrecompiledCharsmap, AppliesTheTinyTokenizersRules) {
  // tiny_valid's charsmap was compiled by SentencePiece from two rules: U+FF21 -> "A", U+FB01 -> "fi".
  const nlohmann::json j = nlohmann::json::parse(read_file(kDir + "/tiny_valid/tokenizer.json"));
  const auto blob = decode_base64(j["normalizer"]["precompiled_charsmap"].get<std::string>());
  ASSERT_TRUE(blob);
  const PrecompiledCharsmap map(*blob, "tiny");
  EXPECT_EQ(map.transform("\uFF21"), std::optional<std::string_view>("A"));
  EXPECT_EQ(map.transform("\uFB01x"), std::optional<std::string_view>("fi"));
  EXPECT_FALSE(map.transform("A"));
  EXPECT_EQ(map.normalize("x\uFF21y\uFB01"), "xAyfi");
  // A grapheme shorter than 6 bytes that begins with a key is replaced whole (HF's rule): the accent goes.
  EXPECT_EQ(map.normalize("\uFF21\u0301b"), "Ab");
  EXPECT_EQ(map.normalize(""), "");
}

TEST(PrecompiledCharsmap, Base64) {
  EXPECT_EQ(decode_base64("aGVsbG8="), std::optional<std::string>("hello"));
  EXPECT_EQ(decode_base64("aGk="), std::optional<std::string>("hi"));
  EXPECT_EQ(decode_base64(""), std::optional<std::string>(""));
  EXPECT_FALSE(decode_base64("aGk"));
  EXPECT_FALSE(decode_base64("a=Gk"));
  EXPECT_FALSE(decode_base64("aG!k"));
}

TEST(PrecompiledCharsmap, TrieLinksOutsideTheArrayAreErrors) {
  // One unit whose offset points far past the array: a lookup must throw, not read out of bounds.
  std::string blob = {4, 0, 0, 0};
  const uint32_t unit = 0x7FFFFu << 10;
  for (int k = 0; k < 4; ++k) blob.push_back(static_cast<char>((unit >> (8 * k)) & 0xFF));
  blob += "x";
  const PrecompiledCharsmap map(blob, "mem: charsmap");
  EXPECT_THROW(map.transform("a"), Error);
}

TEST(T5Tokenizer, BrokenFilesGiveErrorsNamingFileAndField) {
  const nlohmann::json expected = nlohmann::json::parse(read_file(kDir + "/broken/expected_errors.json"));
  ASSERT_GE(expected.size(), 10u);
  for (const auto& [name, must_contain] : expected.items()) {
    const ScratchDir dir("t5-broken-" + name);
    std::filesystem::copy_file(kDir + "/broken/" + name, dir.file("tokenizer.json"));
    std::filesystem::copy_file(kDir + "/tiny_valid/tokenizer_config.json", dir.file("tokenizer_config.json"));
    try {
      T5Tokenizer::from_dir(dir.path());
      ADD_FAILURE() << name << ": loaded without error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(dir.file("tokenizer.json")), std::string::npos)
          << name << ": error does not name the file: " << what;
      EXPECT_NE(what.find(must_contain.get<std::string>()), std::string::npos)
          << name << ": error does not mention '" << must_contain.get<std::string>() << "': " << what;
    }
  }
}

TEST(T5Tokenizer, TinyValidLoadsAndItsCharsmapApplies) {
  const T5Tokenizer tok = T5Tokenizer::from_dir(kDir + "/tiny_valid");
  EXPECT_EQ(tok.encode("\uFF21"), tok.encode("A"));
  EXPECT_NE(tok.encode("\uFF22"), tok.encode("B"));  // no rule for fullwidth B
}

TEST(T5Tokenizer, OtherNormalizerAndPreTokenizerStepsOfTheFileAreIgnoredAsTransformersDoes) {
  // transformers 5.17 takes only the vocabulary and the charsmap from tokenizer.json (checked with its
  // T5Tokenizer: a Replace "a" -> "b" and a Metaspace "never" in the file change nothing).
  nlohmann::json j = nlohmann::json::parse(read_file(kDir + "/tiny_valid/tokenizer.json"));
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", {j["normalizer"], {{"type", "Replace"}, {"pattern", {{"String", "a"}}},
                                                        {"content", "b"}}}}};
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}};
  const ScratchDir dir("t5-other-steps");
  write_file(dir.file("tokenizer.json"), j.dump());
  std::filesystem::copy_file(kDir + "/tiny_valid/tokenizer_config.json", dir.file("tokenizer_config.json"));
  const T5Tokenizer changed = T5Tokenizer::from_dir(dir.path());
  const T5Tokenizer tiny = T5Tokenizer::from_dir(kDir + "/tiny_valid");
  for (const char* text : {"a cat and a bat", "\uFF21a", "  spaced  out  "})
    EXPECT_EQ(changed.encode(text), tiny.encode(text)) << text;
}

TEST(T5Tokenizer, SpieceModelAloneIsRefusedWithAClearError) {
  const ScratchDir dir("t5-spiece-only");
  write_file(dir.file("spiece.model"), "not read");
  try {
    T5Tokenizer::from_dir(dir.path());
    ADD_FAILURE() << "a folder without tokenizer.json loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs tokenizer.json"), std::string::npos) << e.what();
  }
  const ScratchDir empty("t5-empty");
  EXPECT_THROW(T5Tokenizer::from_dir(empty.path()), Error);
}

}  // namespace
}  // namespace omni
