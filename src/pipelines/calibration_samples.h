// Calibration samples for AutoRound (AUTOROUND.md §1 step 1): `nsamples` token sequences of exactly `seqlen`
// tokens, drawn from texts with a seeded shuffle (SplitMix64 + Fisher–Yates, core/rng.h) that the Python
// reference tools replay.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizers/tokenizer.h"

namespace omni {

// How texts become samples.
enum class CalibrationPolicy {
  // Tokenize every text (in the shuffled order), join them with the separator token (<|endoftext|>, else the
  // tokenizer's first eos id) between texts, and cut the stream into consecutive seqlen-token chunks; a final
  // partial chunk is dropped.
  Concat,
  // Use only texts of at least seqlen tokens, each truncated to its first seqlen tokens.
  Skip,
  // The texts in file order as one document, each followed by "\n" (how the lines of a text file run on), as one
  // token stream; the samples are nsamples of its consecutive seqlen-token windows, chosen by the seeded shuffle
  // (no two overlap). No separator token appears that the text itself does not hold. Each text is tokenized on
  // its own (with its "\n"), which equals tokenizing the document wherever the pre-tokenizer splits at newlines.
  Stream,
  // Every text as a one-turn ChatML conversation (the user's message, then the assistant's turn opened), joined
  // in the shuffled order and cut as Concat does but without a separator: the chat markers delimit the texts.
  // For instruct models, whose inputs look like this.
  Chat,
};

CalibrationPolicy parse_calibration_policy(std::string_view name);  // "concat", "skip", "stream" or "chat"
const char* calibration_policy_name(CalibrationPolicy policy);

struct CalibrationExtras {
  // Return fewer than nsamples samples (with a warning through `log`) instead of failing.
  bool allow_fewer = false;
  // Receives the summary line (policy, texts used / skipped) and warnings. May be empty.
  std::function<void(const std::string&)> log;
};

// Returns the samples (each exactly seqlen ids). Fails with a message saying how many samples the texts give and
// what to change when there are fewer than nsamples (unless extras.allow_fewer; an empty result always fails).
std::vector<std::vector<int32_t>> build_calibration_samples(const Tokenizer& tokenizer,
                                                            std::span<const std::string> texts, int64_t nsamples,
                                                            int64_t seqlen, uint64_t seed, CalibrationPolicy policy,
                                                            const CalibrationExtras& extras = {});

// Calibration from pre-tokenized windows (read_token_windows: JSONL {"input_ids": [...]}, each exactly seqlen
// ids below vocab_size): the file's first nsamples windows in file order, untouched, so that another tool reading
// the same file sees the same samples. Logs "calibration: token windows FILE, N samples of T tokens (first N of M
// in the file)"; fewer than nsamples in the file fails (or, with extras.allow_fewer, warns and uses them all).
std::vector<std::vector<int32_t>> calibration_samples_from_token_file(const std::string& path, int64_t nsamples,
                                                                      int64_t seqlen, int64_t vocab_size,
                                                                      const CalibrationExtras& extras = {});

// The id placed between texts by the Concat policy (and between samples by the evaluation): <|endoftext|> if
// the tokenizer has it, else its first eos id; fails naming the tokenizer when it has neither.
int32_t text_separator_id(const Tokenizer& tokenizer);

}  // namespace omni
