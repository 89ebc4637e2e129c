// Golden test of the CLIP tokenizer against transformers 5.17's CLIPTokenizer, as FluxPipeline calls it
// (padding="max_length", max_length=77, truncation=True), on a small CLIP-layout BPE in both folder forms
// (vocab.json + merges.txt, tokenizer.json); fixtures from tools/make_clip_t5_tokenizer_fixtures.py.
#include "io/tokenizers/clip_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "tokenizer_test_util.h"

namespace omni {
namespace {

using namespace tokenizer_test;

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/data/tokenizers/clip";

const ClipTokenizer& from_files() {
  static const ClipTokenizer tok = ClipTokenizer::from_dir(kDir + "/vocab_merges");
  return tok;
}
const ClipTokenizer& from_json() {
  static const ClipTokenizer tok = ClipTokenizer::from_dir(kDir + "/tokenizer_json");
  return tok;
}

TEST(ClipTokenizer, LoadsBothFolderForms) {
  for (const ClipTokenizer* tok : {&from_files(), &from_json()}) {
    EXPECT_EQ(tok->max_length(), 77u);
    EXPECT_EQ(tok->pipeline().token_to_id("<|startoftext|>"), tok->bos_id());
    EXPECT_EQ(tok->pipeline().token_to_id("<|endoftext|>"), tok->eos_id());
    EXPECT_EQ(tok->pad_id(), tok->eos_id());  // FLUX.1-dev pads with <|endoftext|>
    EXPECT_NE(tok->bos_id(), tok->eos_id());
    EXPECT_TRUE(tok->pipeline().token_to_id("a</w>"));
  }
}

TEST(ClipTokenizer, MatchesTransformersOnGoldenCorpus) {
  const auto rows = read_jsonl(kDir + "/expected.jsonl");
  ASSERT_GE(rows.size(), 60u);
  size_t truncated = 0;
  for (const ClipTokenizer* tok : {&from_files(), &from_json()}) {
    int mismatches = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string text = rows[i]["text"];
      const auto want = rows[i]["ids"].get<std::vector<int32_t>>();
      const PaddedIds got = tok->encode_padded(text);
      if ((got.ids != want || got.length != rows[i]["length"].get<size_t>()) && ++mismatches <= 10)
        ADD_FAILURE() << "line " << i + 1 << " text " << printable(text) << "\n  want "
                      << nlohmann::json(want).dump() << " length " << rows[i]["length"] << "\n  got  "
                      << nlohmann::json(got.ids).dump() << " length " << got.length;
      if (tok == &from_files()) truncated += got.truncated();
    }
    EXPECT_EQ(mismatches, 0);
  }
  EXPECT_GE(truncated, 2u);  // the long prompt and the repeated words
}

TEST(ClipTokenizer, TruncationKeepsEosLastAndReportsTheFullLength) {
  const ClipTokenizer& tok = from_files();
  std::string prompt;
  for (int i = 0; i < 100; ++i) prompt += "cat ";
  const PaddedIds p = tok.encode_padded(prompt);
  ASSERT_EQ(p.ids.size(), 77u);
  EXPECT_EQ(p.ids.front(), tok.bos_id());
  EXPECT_EQ(p.ids.back(), tok.eos_id());
  EXPECT_TRUE(p.truncated());
  EXPECT_EQ(p.length, tok.encode(prompt).size());
  EXPECT_GT(p.length, 100u);

  const PaddedIds short_one = tok.encode_padded("cat", 8);
  EXPECT_FALSE(short_one.truncated());
  ASSERT_EQ(short_one.ids.size(), 8u);
  EXPECT_EQ(short_one.ids.back(), tok.pad_id());
  EXPECT_THROW(tok.encode_padded("cat", 1), Error);  // no room for bos and eos
}

TEST(ClipTokenizer, RejectsInvalidUtf8) {
  EXPECT_THROW(from_files().encode_padded(std::string("a\xff") + "b"), Error);
}

TEST(ClipTokenizer, BrokenFilesGiveErrorsNamingFileAndField) {
  const nlohmann::json expected = nlohmann::json::parse(read_file(kDir + "/broken/expected_errors.json"));
  ASSERT_GE(expected.size(), 8u);
  for (const auto& [name, must_contain] : expected.items()) {
    // The case folder holds only the defective file; the rest comes from the valid folder.
    const ScratchDir dir("clip-broken-" + name);
    for (const char* file : {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
      const std::string broken = kDir + "/broken/" + name + "/" + file;
      std::filesystem::copy_file(std::filesystem::exists(broken) ? broken : kDir + "/vocab_merges/" + file,
                                 dir.file(file));
    }
    try {
      ClipTokenizer::from_dir(dir.path());
      ADD_FAILURE() << name << ": loaded without error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(dir.path() + "/"), std::string::npos) << name << ": error does not name the file: " << what;
      EXPECT_NE(what.find(must_contain.get<std::string>()), std::string::npos)
          << name << ": error does not mention '" << must_contain.get<std::string>() << "': " << what;
    }
  }
}

TEST(ClipTokenizer, MissingFilesAreReported) {
  const ScratchDir empty("clip-empty");
  try {
    ClipTokenizer::from_dir(empty.path());
    ADD_FAILURE() << "an empty folder loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab.json"), std::string::npos) << e.what();
  }
  const ScratchDir no_merges("clip-no-merges");
  std::filesystem::copy_file(kDir + "/vocab_merges/vocab.json", no_merges.file("vocab.json"));
  EXPECT_THROW(ClipTokenizer::from_dir(no_merges.path()), Error);
}

}  // namespace
}  // namespace omni
