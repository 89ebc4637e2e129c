// Dataset files (plain text and JSONL, with their error cases) and calibration samples (concat and skip
// policies, seeded order, exact lengths, too few samples), using the shipped tiny model's tokenizer.
#include <gtest/gtest.h>

#include <algorithm>

#include "support/error_of.h"

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "io/tokenizers/tokenizer.h"
#include "pipelines/calibration_samples.h"
#include "pipelines/text_dataset.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

class TextDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(OMNI_BINARY_DIR) / "text_dataset_test_files";
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }

  fs::path dir_;
};

using testing_support::expect_error_containing;

TEST_F(TextDatasetTest, PlainTextOneSamplePerLineSkippingBlankLines) {
  const std::string path = write("plain.txt", "first line\n\n  \nsecond line\r\n\tindented third\nlast without newline");
  EXPECT_EQ(read_text_dataset(path),
            (std::vector<std::string>{"first line", "second line", "\tindented third", "last without newline"}));
}

TEST_F(TextDatasetTest, JsonlByExtensionAndByContent) {
  const std::string body =
      "{\"text\": \"alpha beta\", \"id\": 1}\n\n{\"text\": \"line with \\\"quotes\\\" and \\u00e9\"}\r\n"
      "{\"text\": \"\"}\n{\"meta\": {\"x\": 2}, \"text\": \"gamma\"}\n";
  const std::vector<std::string> expected{"alpha beta", "line with \"quotes\" and \xc3\xa9", "gamma"};
  EXPECT_EQ(read_text_dataset(write("data.jsonl", body)), expected);
  EXPECT_EQ(read_text_dataset(write("data.json", body)), expected);
  EXPECT_EQ(read_text_dataset(write("data.txt", "\n  \n" + body)), expected);  // first non-empty line starts with '{'
  // A plain file whose later lines look like JSON stays plain.
  EXPECT_EQ(read_text_dataset(write("mixed.txt", "plain\n{\"text\": \"x\"}\n")),
            (std::vector<std::string>{"plain", "{\"text\": \"x\"}"}));
}

TEST_F(TextDatasetTest, BrokenJsonlLinesNameFileAndLine) {
  const std::string bad_json = write("bad.jsonl", "{\"text\": \"ok\"}\n\n{\"text\": \"unterminated}\n");
  expect_error_containing([&] { read_text_dataset(bad_json); }, {bad_json, "line 3", "not valid JSON"});
  const std::string no_text = write("notext.jsonl", "{\"text\": \"ok\"}\n{\"content\": \"x\"}\n");
  expect_error_containing([&] { read_text_dataset(no_text); }, {no_text, "line 2", "\"text\""});
  const std::string not_string = write("number.jsonl", "{\"text\": 42}\n");
  expect_error_containing([&] { read_text_dataset(not_string); }, {not_string, "line 1", "string"});
  const std::string array = write("array.jsonl", "[\"text\"]\n");
  expect_error_containing([&] { read_text_dataset(array); }, {array, "line 1", "object"});
}

TEST_F(TextDatasetTest, EmptyAndMissingFilesFail) {
  const std::string empty = write("empty.txt", "");
  expect_error_containing([&] { read_text_dataset(empty); }, {empty, "no samples"});
  const std::string blank = write("blank.txt", "\n \n\t\n");
  expect_error_containing([&] { read_text_dataset(blank); }, {blank, "no samples"});
  const std::string missing = (dir_ / "missing.txt").string();
  expect_error_containing([&] { read_text_dataset(missing); }, {missing});
}

TEST_F(TextDatasetTest, InvalidUtf8NamesFileLineAndByte) {
  const std::string bad = write("latin1.txt", "fine line\nna\xefve caf\xe9\n");
  expect_error_containing([&] { read_text_dataset(bad); }, {bad, "line 2", "not valid UTF-8 at byte 3"});
}

// ---- calibration samples ----

const Tokenizer& tiny_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_dir(std::string(OMNI_SOURCE_DIR) + "/models/tiny-qwen3");
  return tok;
}

// Texts of clearly different lengths (3 .. ~60 tokens), so the policies differ.
std::vector<std::string> varied_texts(int n) {
  const std::vector<std::string> words{"the", "river", "of", "light", "shall", "carry", "a", "small", "animal",
                                       "across", "mountains", "and", "unto", "them", "quietly", "forever"};
  std::vector<std::string> texts;
  for (int i = 0; i < n; ++i) {
    std::string t = "text " + std::to_string(i) + ":";
    const int len = 2 + (i * 7) % 40;
    for (int w = 0; w < len; ++w) t += " " + words[static_cast<size_t>((i * 3 + w * 5) % words.size())];
    texts.push_back(t);
  }
  return texts;
}

std::vector<size_t> shuffled_order(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  SplitMix64 rng(seed);
  shuffle(order, rng);
  return order;
}

TEST(CalibrationSamples, ConcatCutsTheSeededStreamIntoExactChunks) {
  const Tokenizer& tok = tiny_tokenizer();
  const std::vector<std::string> texts = varied_texts(60);
  std::vector<std::string> logs;
  CalibrationExtras extras;
  extras.log = [&](const std::string& line) { logs.push_back(line); };
  const int64_t seqlen = 50, nsamples = 12;
  const auto samples = build_calibration_samples(tok, texts, nsamples, seqlen, 42, CalibrationPolicy::Concat, extras);
  ASSERT_EQ(samples.size(), 12u);
  for (const auto& s : samples) EXPECT_EQ(s.size(), 50u);

  // The expected stream, built here from the definition: texts in the seeded order, <|endoftext|> between.
  const int32_t eot = *tok.token_to_id("<|endoftext|>");
  EXPECT_EQ(text_separator_id(tok), eot);
  std::vector<int32_t> stream;
  for (size_t k : shuffled_order(texts.size(), 42)) {
    if (!stream.empty()) stream.push_back(eot);
    const auto ids = tok.encode(texts[k]);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  ASSERT_GE(stream.size(), 600u);
  for (size_t i = 0; i < samples.size(); ++i)
    EXPECT_EQ(samples[i], std::vector<int32_t>(stream.begin() + static_cast<std::ptrdiff_t>(i * 50),
                                               stream.begin() + static_cast<std::ptrdiff_t>((i + 1) * 50)))
        << "sample " << i;
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find("policy concat"), std::string::npos) << logs[0];
  EXPECT_NE(logs[0].find("12 samples of 50 tokens"), std::string::npos) << logs[0];
}

TEST(CalibrationSamples, StreamTakesSeededWindowsOfTheDocumentInFileOrder) {
  const Tokenizer& tok = tiny_tokenizer();
  const std::vector<std::string> texts = varied_texts(60);
  const int64_t seqlen = 40, nsamples = 10;
  std::string log;
  CalibrationExtras extras;
  extras.log = [&](const std::string& line) { log += line; };
  const auto samples = build_calibration_samples(tok, texts, nsamples, seqlen, 5, CalibrationPolicy::Stream, extras);
  // The expected document, from the definition: every text in file order followed by "\n", no separator token.
  std::vector<int32_t> stream;
  for (const std::string& t : texts) {
    const auto ids = tok.encode(t + "\n");
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  const int32_t eot = *tok.token_to_id("<|endoftext|>");
  ASSERT_EQ(std::count(stream.begin(), stream.end(), eot), 0);
  const size_t windows = stream.size() / 40;
  ASSERT_GT(windows, 10u);
  std::vector<size_t> expected = shuffled_order(windows, 5);  // window indices, seeded
  ASSERT_EQ(samples.size(), 10u);
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto begin = stream.begin() + static_cast<std::ptrdiff_t>(expected[i] * 40);
    EXPECT_EQ(samples[i], std::vector<int32_t>(begin, begin + 40)) << "sample " << i;
  }
  EXPECT_NE(log.find("policy stream, 10 samples of 40 tokens from 60 texts"), std::string::npos) << log;
  // Asking for more windows than the document has fails with the count it gives.
  expect_error_containing(
      [&] { build_calibration_samples(tok, texts, static_cast<int64_t>(windows) + 1, seqlen, 5, CalibrationPolicy::Stream); },
      {"policy stream", std::to_string(windows) + " samples of 40 tokens"});
}

TEST(CalibrationSamples, ChatWrapsEachTextInAChatMLTurnWithoutSeparators) {
  const Tokenizer& tok = tiny_tokenizer();
  const std::vector<std::string> texts = varied_texts(30);
  const auto samples = build_calibration_samples(tok, texts, 6, 32, 3, CalibrationPolicy::Chat);
  std::vector<int32_t> stream;
  for (size_t k : shuffled_order(texts.size(), 3)) {
    const auto ids = tok.encode("<|im_start|>user\n" + texts[k] + "<|im_end|>\n<|im_start|>assistant\n");
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  ASSERT_EQ(samples.size(), 6u);
  for (size_t i = 0; i < samples.size(); ++i)
    EXPECT_EQ(samples[i], std::vector<int32_t>(stream.begin() + static_cast<std::ptrdiff_t>(i * 32),
                                               stream.begin() + static_cast<std::ptrdiff_t>((i + 1) * 32)))
        << "sample " << i;
}

TEST(CalibrationSamples, SkipUsesOnlyLongTextsTruncated) {
  const Tokenizer& tok = tiny_tokenizer();
  const std::vector<std::string> texts = varied_texts(60);
  const int64_t seqlen = 30;
  std::vector<std::vector<int32_t>> long_texts;  // in the seeded order
  int64_t short_before_fifth = 0;
  for (size_t k : shuffled_order(texts.size(), 7)) {
    const auto ids = tok.encode(texts[k]);
    if (static_cast<int64_t>(ids.size()) >= seqlen)
      long_texts.emplace_back(ids.begin(), ids.begin() + seqlen);
    else if (long_texts.size() < 5)
      ++short_before_fifth;
  }
  ASSERT_GE(long_texts.size(), 5u);
  ASSERT_GT(short_before_fifth, 0);  // the policy has something to skip
  std::string log;
  CalibrationExtras extras;
  extras.log = [&](const std::string& line) { log += line; };
  const auto samples = build_calibration_samples(tok, texts, 5, seqlen, 7, CalibrationPolicy::Skip, extras);
  EXPECT_EQ(samples, std::vector<std::vector<int32_t>>(long_texts.begin(), long_texts.begin() + 5));
  EXPECT_NE(log.find("policy skip"), std::string::npos) << log;
  EXPECT_NE(log.find("from 5 texts (" + std::to_string(short_before_fifth) + " texts shorter"), std::string::npos)
      << log;
}

TEST(CalibrationSamples, SeededOrderIsDeterministicAndSeedDependent) {
  const Tokenizer& tok = tiny_tokenizer();
  const std::vector<std::string> texts = varied_texts(60);
  const auto a = build_calibration_samples(tok, texts, 8, 40, 42, CalibrationPolicy::Concat);
  const auto b = build_calibration_samples(tok, texts, 8, 40, 42, CalibrationPolicy::Concat);
  const auto c = build_calibration_samples(tok, texts, 8, 40, 43, CalibrationPolicy::Concat);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(CalibrationSamples, TooFewSamplesFailOrWarnWhenAllowed) {
  const Tokenizer& tok = tiny_tokenizer();
  const std::vector<std::string> texts = varied_texts(10);
  int64_t total = 0, long_enough = 0;
  for (const auto& t : texts) {
    const int64_t n = static_cast<int64_t>(tok.encode(t).size());
    total += n;
    long_enough += n >= 30;
  }
  ASSERT_GT(long_enough, 0);
  ASSERT_LT(long_enough, 10);
  expect_error_containing([&] { build_calibration_samples(tok, texts, 10, 30, 42, CalibrationPolicy::Skip); },
               {"not enough calibration samples", "only " + std::to_string(long_enough) + " of the 10 texts",
                "at least 30 tokens", "lower nsamples or seqlen"});
  const int64_t concat_found = (total + 9) / 30;  // 9 separators between 10 texts
  expect_error_containing([&] { build_calibration_samples(tok, texts, 1000, 30, 42, CalibrationPolicy::Concat); },
               {"not enough calibration samples", std::to_string(concat_found) + " samples of 30 tokens",
                "1000 were asked for"});
  // Nothing long enough at all fails even when fewer are allowed.
  CalibrationExtras allow;
  allow.allow_fewer = true;
  expect_error_containing([&] { build_calibration_samples(tok, texts, 10, 100000, 42, CalibrationPolicy::Skip, allow); },
               {"only 0 of the 10 texts"});

  std::vector<std::string> logs;
  allow.log = [&](const std::string& line) { logs.push_back(line); };
  const auto fewer = build_calibration_samples(tok, texts, 10, 30, 42, CalibrationPolicy::Skip, allow);
  EXPECT_EQ(static_cast<int64_t>(fewer.size()), long_enough);
  for (const auto& s : fewer) EXPECT_EQ(s.size(), 30u);
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_NE(logs[1].find("warning: using " + std::to_string(long_enough) + " calibration samples instead of 10"),
            std::string::npos)
      << logs[1];
}

TEST(CalibrationSamples, BadArgumentsAndPolicyNames) {
  const Tokenizer& tok = tiny_tokenizer();
  const std::vector<std::string> texts = varied_texts(5);
  expect_error_containing([&] { build_calibration_samples(tok, texts, 0, 30, 42, CalibrationPolicy::Concat); }, {"nsamples"});
  expect_error_containing([&] { build_calibration_samples(tok, texts, 2, 0, 42, CalibrationPolicy::Concat); }, {"seqlen"});
  expect_error_containing([&] { build_calibration_samples(tok, {}, 2, 8, 42, CalibrationPolicy::Concat); }, {"text"});
  EXPECT_EQ(parse_calibration_policy("concat"), CalibrationPolicy::Concat);
  EXPECT_EQ(parse_calibration_policy("skip"), CalibrationPolicy::Skip);
  EXPECT_EQ(parse_calibration_policy("stream"), CalibrationPolicy::Stream);
  EXPECT_EQ(parse_calibration_policy("chat"), CalibrationPolicy::Chat);
  for (auto p : {CalibrationPolicy::Concat, CalibrationPolicy::Skip, CalibrationPolicy::Stream, CalibrationPolicy::Chat})
    EXPECT_EQ(parse_calibration_policy(calibration_policy_name(p)), p);
  expect_error_containing([&] { parse_calibration_policy("pad"); }, {"pad", "concat", "skip", "stream", "chat"});
}

// --calib-tokens: pre-tokenized windows are read as they are, in file order, and every malformed line is named.
TEST_F(TextDatasetTest, TokenWindowsAreReadAsTheyAreInFileOrder) {
  const std::string path = write("windows.jsonl", "{\"input_ids\": [5, 6, 7]}\n\n{\"input_ids\": [0, 8191, 3], \"x\": 1}\r\n"
                                                  "{\"input_ids\": [9, 9, 9]}");
  EXPECT_EQ(read_token_windows(path, 3, 8192),
            (std::vector<std::vector<int32_t>>{{5, 6, 7}, {0, 8191, 3}, {9, 9, 9}}));
  std::vector<std::string> logs;
  CalibrationExtras extras;
  extras.log = [&](const std::string& line) { logs.push_back(line); };
  EXPECT_EQ(calibration_samples_from_token_file(path, 2, 3, 8192, extras),
            (std::vector<std::vector<int32_t>>{{5, 6, 7}, {0, 8191, 3}}));
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0], "calibration: token windows " + path + ", 2 samples of 3 tokens (first 2 of 3 in the file)");
  // Too few: an error by default, a warning with allow_fewer.
  expect_error_containing([&] { calibration_samples_from_token_file(path, 4, 3, 8192); },
                          {path, "3 windows", "4 samples"});
  extras.allow_fewer = true;
  EXPECT_EQ(calibration_samples_from_token_file(path, 4, 3, 8192, extras).size(), 3u);
  EXPECT_NE(logs.back().find("warning: using 3 calibration samples instead of 4"), std::string::npos) << logs.back();
}

TEST_F(TextDatasetTest, BrokenTokenWindowsNameFileAndLine) {
  const auto fails = [&](const std::string& name, const std::string& body, const std::vector<std::string>& parts) {
    const std::string path = write(name, body);
    std::vector<std::string> want{path};
    want.insert(want.end(), parts.begin(), parts.end());
    expect_error_containing([&] { read_token_windows(path, 3, 100); }, want);
  };
  fails("len.jsonl", "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [1, 2]}\n", {"line 2", "2 ids", "--seqlen is 3"});
  fails("vocab.jsonl", "{\"input_ids\": [1, 100, 3]}\n", {"line 1", "input_ids[1] = 100", "outside the vocabulary [0, 100)"});
  fails("neg.jsonl", "\n{\"input_ids\": [1, -1, 3]}\n", {"line 2", "input_ids[1] = -1"});
  fails("float.jsonl", "{\"input_ids\": [1, 2.5, 3]}\n", {"line 1", "input_ids[1] is not an integer"});
  fails("text.jsonl", "{\"text\": \"hello\"}\n", {"line 1", "no \"input_ids\" array"});
  fails("json.jsonl", "{\"input_ids\": [1, 2, 3]}\n[1, 2, 3]\n{broken\n", {"line 2", "JSON object"});
  fails("broken.jsonl", "{broken\n", {"line 1", "not valid JSON"});
  fails("empty.jsonl", "\n  \n", {"no windows"});
  expect_error_containing([&] { read_token_windows((dir_ / "missing.jsonl").string(), 3, 100); }, {"missing.jsonl"});
}

}  // namespace
}  // namespace omni
